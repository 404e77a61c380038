// Small helpers shared by the chat screens.
import { state } from "../conversation";

/** The host platform of the chat ("etax" or "einvoice"), for channel-scoped calls. */
export function channel(): string {
  const c = state.conversation?.channel;
  return c === "einvoice" || c === "etax" ? c : "etax";
}

/**
 * A link that is safe to put in an href: absolute http(s) or a same-origin path. Anything
 * else (javascript:, data: …) becomes "" so the caller can render plain text instead.
 */
export function safeUrl(url: string | undefined): string {
  if (!url) return "";
  const u = url.trim();
  if (u.startsWith("/") && !u.startsWith("//")) return u;
  try {
    const p = new URL(u);
    return p.protocol === "https:" || p.protocol === "http:" ? p.href : "";
  } catch {
    return "";
  }
}

/** "1.2 MB" style size; "" when unknown. */
export function fileSize(bytes: bigint | number): string {
  const n = Number(bytes);
  if (!n || n < 0) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** "3分20秒" style duration; "" when unknown. */
export function duration(seconds: number): string {
  if (!seconds || seconds < 0) return "";
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return m ? `${m}分${s ? `${s}秒` : ""}` : `${s}秒`;
}

export interface Segment {
  text: string;
  hit: boolean;
}

/** Splits `text` into plain and highlighted parts; spans are [start, end) in code points. */
export function highlight(text: string, spans: { start: number; end: number }[]): Segment[] {
  const chars = Array.from(text);
  const marks = new Array<boolean>(chars.length).fill(false);
  for (const s of spans) {
    for (let i = Math.max(0, s.start); i < Math.min(chars.length, s.end); i++) marks[i] = true;
  }
  const out: Segment[] = [];
  chars.forEach((c, i) => {
    const last = out[out.length - 1];
    if (last && last.hit === marks[i]) last.text += c;
    else out.push({ text: c, hit: marks[i] });
  });
  return out;
}

/** Highlights every occurrence of the typed words when the server sent no spans. */
export function highlightTyped(text: string, typed: string): Segment[] {
  const needle = typed.trim();
  if (!needle) return [{ text, hit: false }];
  const chars = Array.from(text);
  const spans: { start: number; end: number }[] = [];
  // Characters of the typed text found in the question (CJK has no word boundaries).
  const wanted = new Set(Array.from(needle).filter((c) => c.trim()));
  let start = -1;
  chars.forEach((c, i) => {
    if (wanted.has(c)) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      spans.push({ start, end: i });
      start = -1;
    }
  });
  if (start >= 0) spans.push({ start, end: chars.length });
  return highlight(text, spans);
}
