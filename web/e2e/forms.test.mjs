// §1.19 留言互动 and §1.20 预约互动 in the widget: the dialogs' field rules, 点击上传 with a
// progress bar, the confirm and success dialogs, and the records in the personal centre.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, taxpayerContext, openWidget, api } from "./lib.mjs";
import { choose, confirmBox, invalidArgumentHeaders, pdf, settledShot } from "./forms-helpers.mjs";

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

test("留言: attachment checked, uploaded with progress to 100%, submitted and listed in 我的留言", async () => {
  const { context, token } = await taxpayerContext(browser);
  const page = await openWidget(context);
  await page.getByTestId("open-leave").click();
  const dialog = page.getByTestId("leave-dialog");
  await dialog.waitFor();
  // Defaults: 留言机构 = the 主管税务机关, phone prefilled.
  await dialog.getByTestId("leave-content").locator("textarea").waitFor();
  assert.match(await dialog.getByTestId("leave-org").innerText(), /税务局/);

  // Required content.
  await page.getByTestId("leave-submit").click();
  await dialog.getByTestId("leave-content").getByText("请输入留言内容").waitFor();

  // A wrong type is refused at selection; a PDF is accepted and waits for 点击上传.
  const input = dialog.getByTestId("leave-attach-input");
  await input.setInputFiles({ name: "setup.exe", mimeType: "application/octet-stream", buffer: Buffer.from("MZ....") });
  await dialog.getByTestId("leave-attach-error").getByText("文件类型不支持").waitFor();
  await input.setInputFiles({ name: "发票清单.pdf", mimeType: "application/pdf", buffer: pdf(300_000) });
  const item = dialog.getByTestId("leave-attach-item");
  await item.getByText("待上传").waitFor();

  const content = `附件中的发票能否抵扣？E2E-${Date.now()}`;
  await dialog.getByTestId("leave-content").locator("textarea").fill(content);
  // Not uploaded yet: submitting is blocked with a hint on the attachments.
  await page.getByTestId("leave-submit").click();
  await dialog.getByTestId("leave-attachments").locator(".el-form-item__error").getByText(/尚未上传/).waitFor();

  await dialog.getByTestId("leave-attach-upload").click();
  await dialog.locator("[data-testid=leave-attach-item][data-status=done]").waitFor();
  const progress = item.getByTestId("leave-attach-progress");
  assert.equal(await progress.locator(".el-progress-bar__inner").getAttribute("style").then((s) => /width:\s*100%/.test(s)), true);
  assert.match(await item.innerText(), /上传成功/);
  await settledShot(page, "forms-leave-dialog");

  await page.getByTestId("leave-submit").click();
  await confirmBox(page);
  const success = page.getByTestId("leave-success");
  await success.waitFor();
  const number = (await success.getByTestId("leave-number").innerText()).trim();
  assert.match(number, /^LY\d+/);
  await settledShot(page, "forms-leave-success");
  await success.getByTestId("leave-success-ok").click();

  // Stored with its attachment.
  const mine = await api("zhengna.messaging.v1.LeaveMessageService", token).listMyLeaveMessages({});
  const stored = mine.leaveMessages.find((m) => m.number === number);
  assert.ok(stored, "the leave message is stored");
  assert.equal(stored.content, content);
  assert.deepEqual(stored.attachments.map((a) => a.fileName), ["发票清单.pdf"]);

  // 个人中心 → 我的留言: the row, then 查看详情 with the attachment.
  const center = await context.newPage();
  await center.goto("/widget.html#/center/leave-messages");
  await center.getByTestId("q-number").fill(number);
  await center.getByTestId("q-search").click();
  const row = center.locator(".el-table__row").filter({ hasText: number });
  await row.waitFor();
  assert.match(await row.innerText(), /待处理/);
  await row.getByTestId("leave-view").click();
  const detail = center.getByTestId("leave-detail");
  await detail.getByTestId("detail-number").getByText(number).waitFor();
  assert.equal((await detail.getByTestId("detail-content").innerText()).trim(), content);
  await detail.getByTestId("detail-attachments").getByText("发票清单.pdf").waitFor();
  await settledShot(center, "center-leave-detail");
  await context.close();
});

test("预约: a bad phone is refused inline and blocks submit; a fixed phone books and shows in 我的发起", async () => {
  const { context, token } = await taxpayerContext(browser, { viewport: { width: 420, height: 760 } });
  const page = await openWidget(context);
  await page.getByTestId("open-appointment").click();
  const dialog = page.getByTestId("appt-dialog");
  await dialog.getByTestId("appt-description").locator("textarea").waitFor();
  // Defaults of §1.20.3: 综合服务, the 主管税务机关, the registered phone.
  assert.match(await dialog.getByTestId("appt-service-type").innerText(), /综合服务/);
  assert.match(await dialog.getByTestId("appt-unit").innerText(), /税务局/);
  assert.equal(await dialog.getByTestId("appt-phone").locator("input").inputValue(), "13800000001");

  await dialog.getByTestId("appt-method-1").click(); // 电话
  await choose(page, dialog.getByTestId("appt-category"), "发票业务");
  await choose(page, dialog.getByTestId("appt-slot"), undefined, 0); // 日期
  await choose(page, dialog.getByTestId("appt-slot"), undefined, 1); // 时段
  const description = `咨询发票领用流程 E2E-${Date.now()}`;
  await dialog.getByTestId("appt-description").locator("textarea").fill(description);

  // Phone appointments need a phone; a malformed one is refused.
  const phone = dialog.getByTestId("appt-phone").locator("input");
  await phone.fill("");
  await page.getByTestId("appt-submit").click();
  await dialog.getByTestId("appt-phone").getByText("手机号码必填").waitFor();
  await phone.fill("12345");
  await page.getByTestId("appt-submit").click();
  const phoneError = dialog.getByTestId("appt-phone").locator(".el-form-item__error");
  await phoneError.waitFor();
  assert.match(await phoneError.innerText(), /正确的手机号码/);
  await settledShot(page, "forms-appointment-phone-error");
  assert.equal(await page.getByTestId("appt-confirm").isVisible(), false, "no confirmation with a bad phone");
  const before = await api("zhengna.appointment.v1.AppointmentService", token).listAppointments({});
  assert.equal(before.appointments.length, 0, "nothing was booked");

  await phone.fill("13912345678");
  await page.getByTestId("appt-submit").click();
  const confirm = page.getByTestId("appt-confirm");
  await confirm.waitFor();
  assert.match(await confirm.innerText(), /13912345678/);
  assert.match(await confirm.innerText(), /发票业务/);
  await settledShot(page, "forms-appointment-confirm");
  await confirm.getByTestId("appt-confirm-ok").click();
  const success = page.getByTestId("appt-success");
  await success.waitFor();
  const number = (await success.getByTestId("appt-number").innerText()).trim();
  assert.match(number, /^YY\d+/);
  await settledShot(page, "forms-appointment-success");
  await success.getByTestId("appt-success-ok").click();

  const list = await api("zhengna.appointment.v1.AppointmentService", token).listAppointments({});
  const booked = list.appointments.find((a) => a.number === number);
  assert.ok(booked, "booked on the server");
  assert.equal(booked.phone, "13912345678");
  assert.equal(booked.method, 1);

  // 个人中心 → 我的预约 → 我的发起 (narrow screen: cards).
  const center = await context.newPage();
  await center.goto("/widget.html#/center/appointments");
  const card = center.locator(".card").filter({ hasText: number });
  await card.waitFor();
  assert.match(await card.innerText(), /预约成功/);
  assert.match(await card.innerText(), /待互动/);
  await settledShot(center, "center-appointments-narrow");
  await context.close();
});

test("留言 / 预约 dialogs open from the chat's window events", async () => {
  const { context } = await taxpayerContext(browser, { viewport: { width: 360, height: 720 } });
  const page = await openWidget(context);
  await page.evaluate(() =>
    window.dispatchEvent(new CustomEvent("zhengna:leave-message", { detail: { text: "夜间无人工，想留言咨询" } })),
  );
  const leave = page.getByTestId("leave-dialog");
  await leave.getByTestId("leave-content").locator("textarea").waitFor();
  assert.equal(await leave.getByTestId("leave-content").locator("textarea").inputValue(), "夜间无人工，想留言咨询");
  await settledShot(page, "forms-leave-dialog-360");
  await page.getByTestId("leave-cancel").click();
  await leave.waitFor({ state: "hidden" });
  await page.evaluate(() => window.dispatchEvent(new Event("zhengna:appointment")));
  const appt = page.getByTestId("appt-dialog");
  await appt.getByTestId("appt-description").locator("textarea").waitFor();
  await settledShot(page, "forms-appointment-dialog-360");
  // Required fields are named inline.
  await page.getByTestId("appt-submit").click();
  await appt.getByTestId("appt-category").getByText("请选择预约业务类别").waitFor();
  await appt.getByTestId("appt-slot").getByText("请选择预约日期").waitFor();
  await appt.getByTestId("appt-description").getByText("请填写预约事项说明").waitFor();
  await context.close();
});

test("预约: the server's per-field refusals are shown on their fields in Chinese", async () => {
  const { context, token } = await taxpayerContext(browser);
  const page = await openWidget(context);
  await page.route("**/zhengna.appointment.v1.AppointmentService/BookAppointment", (route) =>
    route.fulfill({
      status: 200,
      headers: invalidArgumentHeaders(
        [
          ["phone", "must be a mainland mobile or a landline with area code"],
          ["business_category", "unknown business category"],
        ],
        "请填写正确的手机号码或带区号的固定电话。；预约业务类别有误，请重新选择。",
      ),
      body: "",
    }),
  );
  await page.getByTestId("open-appointment").click();
  const dialog = page.getByTestId("appt-dialog");
  await dialog.getByTestId("appt-description").locator("textarea").waitFor();
  await choose(page, dialog.getByTestId("appt-category"), "申报纳税");
  await choose(page, dialog.getByTestId("appt-slot"), undefined, 0);
  await choose(page, dialog.getByTestId("appt-slot"), undefined, 1);
  await dialog.getByTestId("appt-description").locator("textarea").fill("咨询申报");
  await page.getByTestId("appt-submit").click();
  await dialog.getByTestId("appt-phone").locator(".el-form-item__error").getByText("请填写正确的手机号码或带区号的固定电话。").waitFor();
  assert.equal(
    (await dialog.getByTestId("appt-category").locator(".el-form-item__error").innerText()).trim(),
    "预约业务类别有误，请重新选择。",
  );
  assert.doesNotMatch(await dialog.innerText(), /must be|unknown/, "no English reaches the taxpayer");
  assert.equal(await page.getByTestId("appt-confirm").isVisible(), false);
  await settledShot(page, "forms-appointment-server-errors");
  assert.equal((await api("zhengna.appointment.v1.AppointmentService", token).listAppointments({})).appointments.length, 0);
  await context.close();
});
