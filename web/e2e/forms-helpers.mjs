// Helpers shared by forms.test.mjs and center.test.mjs: Element Plus selects, message boxes,
// free appointment slots and small test files.
import { api, devToken, eventually, shot } from "./lib.mjs";

/** Opens the first el-select inside `scope` (a locator) and clicks the visible option `text`
 *  (or the first enabled one when `text` is omitted). Returns the chosen option's text. */
export async function choose(page, scope, text, nth = 0) {
  const select = scope.locator(".el-select").nth(nth);
  await select.click();
  const options = page.locator(".el-select-dropdown__item:not(.is-disabled)").filter({ visible: true });
  const option = text ? options.filter({ hasText: text }).first() : options.first();
  await option.waitFor();
  const chosen = (await option.innerText()).trim();
  await option.click();
  await options.first().waitFor({ state: "hidden" }).catch(() => undefined);
  return chosen;
}

/** Clicks the primary button of the visible Element Plus message box. */
export async function confirmBox(page) {
  const box = page.locator(".el-message-box").filter({ visible: true });
  await box.waitFor();
  await box.locator(".el-message-box__btns .el-button--primary").click();
  await box.waitFor({ state: "hidden" });
}

/** A one-page PDF-looking buffer (the server sniffs the %PDF header). */
export function pdf(size = 40_000) {
  const head = Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "latin1");
  return Buffer.concat([head, Buffer.alloc(Math.max(0, size - head.length), 0x20)]);
}

/** Free slots of the taxpayer's 主管税务机关 in the next two weeks (remaining > 0). */
export async function freeSlots(taxpayerToken) {
  const today = new Date();
  const end = new Date(Date.now() + 14 * 86400_000);
  const d = (x) => ({ year: x.getFullYear(), month: x.getMonth() + 1, day: x.getDate() });
  const opts = await api("zhengna.appointment.v1.AppointmentService", taxpayerToken).getBookingOptions({
    dates: { start: d(today), end: d(end) },
  });
  // Skip slots starting within the next two hours (minimum lead time, slow machine).
  const soon = BigInt(Math.floor(Date.now() / 1000) + 2 * 3600);
  return opts.slots.filter((s) => s.remaining > 0 && s.start.seconds > soon);
}

/** A random element, so parallel tests rarely compete for the same slot. */
export function pickRandom(list) {
  if (!list.length) throw new Error("no free appointment slot");
  return list[Math.floor(Math.random() * list.length)];
}

/** Books an appointment for the taxpayer through the API; returns it. */
export async function bookViaApi(taxpayerToken, description = "咨询小规模纳税人增值税减免申报") {
  const slot = pickRandom(await freeSlots(taxpayerToken));
  const res = await api("zhengna.appointment.v1.AppointmentService", taxpayerToken).bookAppointment({
    clientRequestId: crypto.randomUUID(),
    method: 2, // ONLINE
    businessCategory: "declaration",
    slotStart: slot.start,
    description,
  });
  return res.appointment;
}

/** An agent of the taxpayer's office invites the taxpayer (税局邀请); returns it. */
export async function inviteViaApi(taxpayerToken, taxpayerId, description) {
  const agentToken = await devToken("agent-jinan");
  const slot = pickRandom(await freeSlots(taxpayerToken));
  const res = await api("zhengna.appointment.v1.AppointmentDeskService", agentToken).inviteTaxpayer({
    clientRequestId: crypto.randomUUID(),
    taxpayerId,
    method: 2, // ONLINE
    businessCategory: "invoice",
    slotStart: slot.start,
    description,
  });
  return res.appointment;
}

/** Waits until the taxpayer's inbox holds a notification matching `pred`. */
export async function waitForNotice(taxpayerToken, pred, what = "notification") {
  return eventually(async () => {
    const r = await api("zhengna.messaging.v1.InboxService", taxpayerToken).listNotifications({});
    return r.notifications.find(pred);
  }, 60_000, what);
}

/** Screenshot once CSS transitions (dialog fades, progress bars) have finished. */
export async function settledShot(page, name) {
  await page
    .waitForFunction(() => document.getAnimations().every((a) => a.playState !== "running"), null, { timeout: 5000 })
    .catch(() => undefined);
  await shot(page, name);
}

// --- A fake grpc-web refusal, to show how server violations land on the form fields. ---
function varint(n) {
  const out = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
function field(no, bytes) {
  return Buffer.concat([varint((no << 3) | 2), varint(bytes.length), bytes]);
}
const str = (no, s) => field(no, Buffer.from(s, "utf8"));

/** Headers of a trailers-only grpc-web INVALID_ARGUMENT response as the services send it:
 *  a BadRequest whose violations carry an English description and their Chinese text
 *  (localized_message), and the Chinese texts joined with "；" as the LocalizedMessage. */
export function invalidArgumentHeaders(violations, chinese) {
  const texts = chinese.split("；");
  const badRequest = Buffer.concat(
    violations.map(([f, d], i) =>
      field(
        1,
        Buffer.concat([str(1, f), str(2, d), field(4, Buffer.concat([str(1, "zh-CN"), str(2, texts[i] ?? chinese)]))]),
      ),
    ),
  );
  const localized = Buffer.concat([str(1, "zh-CN"), str(2, chinese)]);
  const status = Buffer.concat([
    Buffer.from([0x08, 3]), // code = INVALID_ARGUMENT
    str(2, "invalid argument"),
    field(3, Buffer.concat([str(1, "type.googleapis.com/google.rpc.BadRequest"), field(2, badRequest)])),
    field(3, Buffer.concat([str(1, "type.googleapis.com/google.rpc.LocalizedMessage"), field(2, localized)])),
  ]);
  return {
    "content-type": "application/grpc-web+proto",
    "grpc-status": "3",
    "grpc-message": "invalid%20argument",
    "grpc-status-details-bin": status.toString("base64").replace(/=+$/, ""),
    "access-control-expose-headers": "grpc-status,grpc-message,grpc-status-details-bin",
  };
}
