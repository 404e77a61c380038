// Small helpers shared by the 留言 / 预约 dialogs and the personal centre forms: per-field
// server errors in Chinese (each violation carries its own text), phone rules, Asia/Shanghai dates and a narrow-screen flag.
import { onBeforeUnmount, ref, type Ref } from "vue";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { violationFor, type ApiFailure } from "../../api/errors";

/** The Chinese text of the server's violation for `field` ("" when none). */
export function fieldError(f: ApiFailure | null, field: string): string {
  return violationFor(f, field);
}

/** Violations whose field is not one of `known` (shown above the form). */
export function otherErrors(f: ApiFailure | null, known: string[]): string {
  if (!f) return "";
  if (f.violations.length === 0) return f.message;
  const rest = f.violations.filter((v) => !known.some((k) => violationFor({ ...f, violations: [v] }, k)));
  return [...new Set(rest.map((v) => v.description))].join("；");
}

/** A mainland mobile number: 11 digits starting with 1. */
export function isMobile(s: string): boolean {
  return /^1\d{10}$/.test(s);
}

/** A mobile, or a landline with area code (0531-88888888, 053188888888, 0531-88888888-123). */
export function isPhone(s: string): boolean {
  if (isMobile(s)) return true;
  if (/^0\d{2,3}-\d{7,8}(-\d{1,6})?$/.test(s)) return true;
  return /^0\d{9,11}$/.test(s);
}

/** Length in Unicode code points (what the server counts). */
export function charCount(s: string): number {
  return [...s].length;
}

const TZ = "Asia/Shanghai";
const dateFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" });
const timeFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, hour: "2-digit", minute: "2-digit", hour12: false });
const weekdayFmt = new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, weekday: "short" });

function toDate(t: Timestamp | Date | undefined): Date | null {
  if (!t) return null;
  return t instanceof Date ? t : timestampDate(t);
}

/** Shanghai calendar parts of an instant. */
export function shanghaiParts(d: Date): { year: number; month: number; day: number } {
  const p = dateFmt.formatToParts(d);
  const get = (type: string) => Number(p.find((x) => x.type === type)?.value ?? 0);
  return { year: get("year"), month: get("month"), day: get("day") };
}

/** "2024-06-01" (Shanghai). */
export function fmtDate(t: Timestamp | Date | undefined): string {
  const d = toDate(t);
  if (!d) return "";
  const { year, month, day } = shanghaiParts(d);
  return `${year}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`;
}

/** "09:30" (Shanghai). */
export function fmtTime(t: Timestamp | Date | undefined): string {
  const d = toDate(t);
  return d ? timeFmt.format(d) : "";
}

/** "2024-06-01 09:30" (Shanghai). */
export function fmtDateTime(t: Timestamp | Date | undefined): string {
  const d = toDate(t);
  return d ? `${fmtDate(d)} ${fmtTime(d)}` : "";
}

/** "周一". */
export function fmtWeekday(t: Timestamp | Date | undefined): string {
  const d = toDate(t);
  return d ? weekdayFmt.format(d) : "";
}

/** "2024-06-01 09:00-09:30" for a slot. */
export function fmtSlot(start: Timestamp | undefined, end: Timestamp | undefined): string {
  if (!start) return "";
  return `${fmtDateTime(start)}-${fmtTime(end)}`;
}

/** Midnight of a "YYYY-MM-DD" day in Shanghai, as an instant. */
export function shanghaiMidnight(day: string, plusDays = 0): Date {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + plusDays) - 8 * 3600 * 1000);
}

/** {year, month, day} of a "YYYY-MM-DD" string. */
export function dateParts(day: string): { year: number; month: number; day: number } {
  const [year, month, d] = day.split("-").map(Number);
  return { year, month, day: d };
}

/** True while the viewport is at most `px` wide. */
export function useNarrow(px = 768): Ref<boolean> {
  const mq = window.matchMedia(`(max-width: ${px}px)`);
  const narrow = ref(mq.matches);
  const on = (e: MediaQueryListEvent) => (narrow.value = e.matches);
  mq.addEventListener("change", on);
  onBeforeUnmount(() => mq.removeEventListener("change", on));
  return narrow;
}

/** Splits text into plain parts and http(s) links, to render links as <a>. */
export function linkify(text: string): { text: string; href?: string }[] {
  const out: { text: string; href?: string }[] = [];
  const re = /https?:\/\/[^\s，。；、）)"'<>]+/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index! > last) out.push({ text: text.slice(last, m.index) });
    out.push({ text: m[0], href: m[0] });
    last = m.index! + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** Scrolls the first field with an error (inside the element with `testid`) into view. */
export function revealFirstError(testid: string): void {
  requestAnimationFrame(() => {
    const el = document.querySelector(`[data-testid="${testid}"] .el-form-item.is-error`);
    el?.scrollIntoView({ block: "center", behavior: "smooth" });
  });
}
