// The platform's emoji set (发送表情): a code for the platform (lower case, digits, "_"), the
// glyph sent as `alt` so any client can show it, and a Chinese name for screen readers.
export interface Emoji {
  code: string;
  glyph: string;
  name: string;
}

export const EMOJI: Emoji[] = [
  { code: "smile", glyph: "😊", name: "微笑" },
  { code: "grin", glyph: "😄", name: "大笑" },
  { code: "joy", glyph: "😂", name: "笑哭" },
  { code: "wink", glyph: "😉", name: "眨眼" },
  { code: "heart_eyes", glyph: "😍", name: "喜欢" },
  { code: "thinking", glyph: "🤔", name: "思考" },
  { code: "sweat_smile", glyph: "😅", name: "尴尬" },
  { code: "confused", glyph: "😕", name: "困惑" },
  { code: "surprised", glyph: "😮", name: "惊讶" },
  { code: "cry", glyph: "😢", name: "难过" },
  { code: "sob", glyph: "😭", name: "大哭" },
  { code: "angry", glyph: "😠", name: "生气" },
  { code: "thumbs_up", glyph: "👍", name: "赞" },
  { code: "thumbs_down", glyph: "👎", name: "弱" },
  { code: "ok_hand", glyph: "👌", name: "好的" },
  { code: "clap", glyph: "👏", name: "鼓掌" },
  { code: "pray", glyph: "🙏", name: "感谢" },
  { code: "handshake", glyph: "🤝", name: "握手" },
  { code: "muscle", glyph: "💪", name: "加油" },
  { code: "rose", glyph: "🌹", name: "玫瑰" },
  { code: "heart", glyph: "❤️", name: "爱心" },
  { code: "tada", glyph: "🎉", name: "庆祝" },
  { code: "coffee", glyph: "☕", name: "咖啡" },
  { code: "question", glyph: "❓", name: "疑问" },
];

const BY_CODE = new Map(EMOJI.map((e) => [e.code, e]));

/** What to show for an emoji message: the set's glyph, else the sender's fallback. */
export function emojiGlyph(code: string, alt: string): string {
  const known = BY_CODE.get(code);
  if (known) return known.glyph;
  if (alt) return alt;
  // A code that is itself an emoji character sequence.
  return /^[\x00-\x7f]*$/.test(code) ? `[${code}]` : code;
}

export function emojiName(code: string, alt: string): string {
  return BY_CODE.get(code)?.name ?? (alt || code);
}

let color: boolean | null = null;

/**
 * Whether this browser draws colour emoji (a machine without an emoji font draws empty
 * boxes instead; then the set is shown by name, e.g. "[赞]").
 */
export function canShowEmoji(): boolean {
  if (color !== null) return color;
  color = true;
  try {
    const c = document.createElement("canvas");
    c.width = c.height = 32;
    const g = c.getContext("2d", { willReadFrequently: true });
    if (!g) return color;
    g.textBaseline = "top";
    g.font = "28px sans-serif";
    g.fillText("😊", 0, 0);
    const px = g.getImageData(0, 0, 32, 32).data;
    let coloured = false;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] > 0 && (Math.abs(px[i] - px[i + 1]) > 20 || Math.abs(px[i + 1] - px[i + 2]) > 20)) {
        coloured = true;
        break;
      }
    }
    color = coloured;
  } catch {
    color = true;
  }
  return color;
}
