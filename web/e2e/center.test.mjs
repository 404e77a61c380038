// §2 个人中心 and §1.12/§1.13 我的消息/我的收藏: 我的留言 (query, detail with the reply),
// 我的预约 (取消预约; 税局邀请 accept / reject with a reason), unread counts dropping when a
// notice is opened (side panel, 360 px compact entry, 消息提示 page), and favourites.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, taxpayerContext, openWidget, api, devToken } from "./lib.mjs";
import { bookViaApi, confirmBox, inviteViaApi, settledShot, waitForNotice } from "./forms-helpers.mjs";

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

const APPT = "zhengna.appointment.v1.AppointmentService";
const INBOX = "zhengna.messaging.v1.InboxService";

test("我的留言: query by type and content, detail shows the agent's reply", async () => {
  const { context, token } = await taxpayerContext(browser);
  const leave = api("zhengna.messaging.v1.LeaveMessageService", token);
  const tag = `E2E${Date.now()}`;
  const consult = (
    await leave.submitLeaveMessage({ clientRequestId: crypto.randomUUID(), typeCode: "consult", content: `发票能否作废 ${tag}` })
  ).leaveMessage;
  const suggestion = (
    await leave.submitLeaveMessage({ clientRequestId: crypto.randomUUID(), typeCode: "suggestion", content: `建议延长服务时间 ${tag}` })
  ).leaveMessage;
  await api("zhengna.messaging.v1.LeaveMessageDeskService", await devToken("agent-jinan")).replyLeaveMessage({
    clientRequestId: crypto.randomUUID(),
    id: consult.id,
    content: "您好，当月开具的发票可在电子发票服务平台直接作废。",
  });

  const page = await context.newPage();
  await page.goto("/widget.html#/center/leave-messages");
  const rows = page.locator(".el-table__row");
  await rows.filter({ hasText: consult.number }).waitFor();
  assert.equal(await rows.count(), 2);
  await settledShot(page, "center-leave-messages");

  // 留言类型 = 意见建议 → only the suggestion.
  await page.locator(".query .el-form-item").filter({ hasText: "留言类型" }).locator(".el-select").click();
  await page.locator(".el-select-dropdown__item").filter({ visible: true }).filter({ hasText: "意见建议" }).click();
  await page.getByTestId("q-search").click();
  await page.waitForFunction((n) => {
    const r = [...document.querySelectorAll(".el-table__row")];
    return r.length === 1 && r[0].textContent.includes(n);
  }, suggestion.number);
  // Reset, then fuzzy content → only the consultation, now 已回复.
  await page.getByTestId("q-reset").click();
  await page.getByTestId("q-content").fill("作废");
  await page.getByTestId("q-search").click();
  await page.waitForFunction((n) => {
    const r = [...document.querySelectorAll(".el-table__row")];
    return r.length === 1 && r[0].textContent.includes(n);
  }, consult.number);
  const row = rows.filter({ hasText: consult.number });
  assert.match(await row.innerText(), /已回复/);
  await row.getByTestId("leave-view").click();
  const reply = page.getByTestId("reply");
  await reply.waitFor();
  assert.match(await reply.innerText(), /电子发票服务平台直接作废/);
  assert.match(await page.getByTestId("detail-status").innerText(), /已回复/);
  await settledShot(page, "center-leave-detail-reply");
  await context.close();
});

test("我的发起: 取消预约 asks for confirmation and cancels on the server", async () => {
  const { context, token } = await taxpayerContext(browser);
  const booked = await bookViaApi(token, "咨询房产税申报 E2E-cancel");
  const page = await context.newPage();
  await page.goto("/widget.html#/center/appointments");
  const row = page.locator(".el-table__row").filter({ hasText: booked.number });
  await row.waitFor();
  assert.match(await row.innerText(), /预约成功/);
  await settledShot(page, "center-appointments");
  await row.getByTestId("appt-view").click();
  await page.getByTestId("detail-number").getByText(booked.number).waitFor();
  assert.match(await page.getByTestId("detail-confirm").innerText(), /预约成功/);
  assert.match(await page.getByTestId("detail-interaction").innerText(), /待互动/);
  await settledShot(page, "center-appointment-detail");

  await page.getByTestId("cancel").click();
  const dialog = page.getByTestId("cancel-dialog");
  await dialog.waitFor();
  await page.getByTestId("cancel-reason").fill("时间冲突，改日再约");
  await settledShot(page, "center-appointment-cancel-confirm");
  await dialog.getByTestId("cancel-confirm").click();
  await page.getByTestId("detail-confirm").getByText("取消预约").waitFor();
  assert.match(await page.getByTestId("detail-interaction").innerText(), /互动失败/);
  assert.equal(await page.getByTestId("cancel").count(), 0, "no second cancel");

  const got = await api(APPT, token).getAppointment({ id: booked.id });
  assert.equal(got.appointment.confirmStatus, 4, "CANCELLED");
  assert.equal(got.appointment.interactionStatus, 4, "FAILED");
  assert.equal(got.canCancel, false);

  // Back in the list the row shows the new status.
  await page.getByTestId("back").click();
  await page.locator(".el-table__row").filter({ hasText: booked.number }).getByText("取消预约").waitFor();
  await context.close();
});

test("税局邀请: accept one invitation, reject another with a reason", async () => {
  const { context, token, sub } = await taxpayerContext(browser);
  const first = await inviteViaApi(token, sub, "请就发票异常情况进行线上说明 E2E-accept");
  const second = await inviteViaApi(token, sub, "请补充提交登记资料 E2E-reject");

  const page = await context.newPage();
  await page.goto("/widget.html#/center/appointments?tab=invited");
  const rowOf = (a) => page.locator(".el-table__row").filter({ hasText: a.number });
  await rowOf(first).waitFor();
  await rowOf(second).waitFor();
  assert.match(await rowOf(first).innerText(), /待确认/);
  await settledShot(page, "center-invitations");

  // Accept the first.
  await rowOf(first).getByTestId("appt-view").click();
  await page.getByTestId("detail-number").getByText(first.number).waitFor();
  assert.match(await page.getByTestId("detail-confirm").innerText(), /待确认/);
  await settledShot(page, "center-invitation-detail");
  await page.getByTestId("accept").click();
  await confirmBox(page);
  await page.getByTestId("detail-confirm").getByText("预约成功").waitFor();
  assert.equal(await page.getByTestId("accept").count(), 0);

  // Reject the second: the reason is required.
  await page.getByTestId("back").click();
  await rowOf(second).getByTestId("appt-view").click();
  await page.getByTestId("detail-number").getByText(second.number).waitFor();
  await page.getByTestId("reject").click();
  const dialog = page.getByTestId("reject-dialog");
  await dialog.waitFor();
  await dialog.getByTestId("reject-confirm").click();
  await dialog.getByText("请输入拒绝原因").waitFor();
  await page.getByTestId("reject-reason").fill("当日外出，无法参加");
  await settledShot(page, "center-invitation-reject");
  await dialog.getByTestId("reject-confirm").click();
  await page.getByTestId("detail-confirm").getByText("已拒绝").waitFor();
  assert.match(await page.getByTestId("detail-reason").innerText(), /当日外出/);

  const a = (await api(APPT, token).getAppointment({ id: first.id })).appointment;
  const b = (await api(APPT, token).getAppointment({ id: second.id })).appointment;
  assert.equal(a.confirmStatus, 2, "BOOKED");
  assert.equal(b.confirmStatus, 6, "REJECTED");
  assert.equal(b.reason, "当日外出，无法参加");
  await context.close();
});

test("我的消息: opening a notice lowers the unread count; links open the personal centre", async () => {
  const { context, token } = await taxpayerContext(browser);
  const booked = await bookViaApi(token);
  await waitForNotice(token, (n) => n.sourceRef === booked.id, "预约成功 notice");

  const page = await openWidget(context);
  const panel = page.getByTestId("my-messages");
  await panel.getByTestId("unread-total").getByText("(1)").waitFor();
  assert.match(await panel.getByTestId("unread-notice").innerText(), /\(1\)/);
  const item = panel.locator("[data-testid=notice-item][data-read='0']");
  await item.waitFor();
  await settledShot(page, "panels-my-messages");
  await item.click();
  const detail = page.getByTestId("notice-detail");
  await detail.getByTestId("notice-detail-title").getByText("预约成功").waitFor();
  assert.match(await detail.getByTestId("notice-detail-body").innerText(), new RegExp(booked.number));
  await settledShot(page, "panels-notice-detail");
  await panel.getByTestId("unread-total").getByText("(0)").waitFor();
  assert.equal((await api(INBOX, token).getUnreadCount({})).totalUnread, 0);

  // 查看预约详情 opens the personal centre on that appointment.
  const [center] = await Promise.all([context.waitForEvent("page"), detail.getByTestId("notice-source").click()]);
  await center.getByTestId("detail-number").getByText(booked.number).waitFor();
  await page.keyboard.press("Escape");

  // 更多 opens 消息提示.
  const [more] = await Promise.all([context.waitForEvent("page"), panel.getByTestId("messages-more").click()]);
  await more.getByTestId("center-Notifications").waitFor();
  assert.match(more.url(), /#\/center\/notifications/);
  await context.close();
});

test("360 px: the compact entry shows the badge; 消息提示 page marks read", async () => {
  const { context, token, sub } = await taxpayerContext(browser, { viewport: { width: 360, height: 720 } });
  const invited = await inviteViaApi(token, sub, "请核对申报数据 E2E-todo");
  const booked = await bookViaApi(token);
  await waitForNotice(token, (n) => n.sourceRef === invited.id, "税局邀请 todo");
  await waitForNotice(token, (n) => n.sourceRef === booked.id, "预约成功 notice");

  const page = await openWidget(context);
  const badge = page.getByTestId("my-entry-badge");
  await badge.locator(".el-badge__content").getByText("2").waitFor();
  await page.getByTestId("open-my-panels").click();
  const drawer = page.getByTestId("my-drawer");
  await drawer.getByTestId("unread-todo").getByText("(1)").waitFor();
  await settledShot(page, "panels-drawer-360");
  // 待办提醒 first: open the invitation.
  await drawer.getByTestId("tab-todo").click();
  await drawer.locator("[data-testid=notice-item][data-read='0']").first().click();
  await page.getByTestId("notice-detail").getByTestId("notice-detail-title").getByText("税局邀请").waitFor();
  await page.getByTestId("notice-detail").locator(".el-dialog__footer .el-button--primary").click();
  await badge.locator(".el-badge__content").getByText("1").waitFor();

  // The personal centre's 消息提示 page at 360 px.
  const center = await context.newPage();
  await center.goto("/widget.html#/center/notifications");
  await center.getByTestId("center-unread").getByText("未读 1 条").waitFor();
  const unread = center.locator("[data-testid=center-notice][data-read='0']");
  await unread.waitFor();
  assert.equal(await unread.count(), 1);
  await settledShot(center, "center-notifications-360");
  await unread.locator("button").click();
  await center.getByTestId("notice-detail").getByTestId("notice-detail-title").getByText("预约成功").waitFor();
  await center.getByTestId("center-unread").getByText("未读 0 条").waitFor();
  await center.getByTestId("notice-detail").locator(".el-dialog__footer .el-button--primary").click();
  assert.equal(await center.locator("[data-testid=center-notice][data-read='0']").count(), 0);
  assert.equal((await api(INBOX, token).getUnreadCount({})).totalUnread, 0);
  // The widget's badge follows (WatchInbox).
  await badge.locator(".el-badge__content").waitFor({ state: "hidden" });
  await context.close();
});

test("我的收藏: a favourite shows in the panel and the page, opens its answer, and can be removed", async () => {
  const { context, token } = await taxpayerContext(browser);
  const answers = api("zhengna.answer.v1.AnswerService", token);
  const asked = await answers.ask({ question: "红字确认单怎么发起" });
  assert.ok(asked.answer?.itemId, "the knowledge base answers");
  await answers.addFavourite({ itemId: asked.answer.itemId });
  const question = asked.answer.standardQuestion;

  const page = await openWidget(context);
  const panel = page.getByTestId("my-favourites");
  await panel.getByTestId("fav-item").getByText(question).waitFor();
  assert.match(await panel.getByTestId("fav-total").innerText(), /\(1\)/);
  await settledShot(page, "panels-my-favourites");
  // Clicking it asks the bot (the question shows as the taxpayer's message).
  await panel.getByTestId("fav-item").click();
  await page.locator(".msg.mine").filter({ hasText: question }).first().waitFor();

  const [center] = await Promise.all([context.waitForEvent("page"), panel.getByTestId("favourites-more").click()]);
  await center.getByTestId("center-fav").getByText(question).waitFor();
  assert.match(center.url(), /#\/center\/favourites/);
  await settledShot(center, "center-favourites");
  await center.getByTestId("fav-open").click();
  const dialog = center.getByTestId("answer-dialog");
  await dialog.getByTestId("answer-view").getByText(question).waitFor();
  assert.match(await dialog.innerText(), /红字/);
  await settledShot(center, "center-favourite-answer");
  await dialog.locator(".el-dialog__footer .el-button--primary").click();

  await center.getByTestId("fav-unfav").click();
  await confirmBox(center);
  await center.getByText("暂无收藏").waitFor();
  assert.equal((await answers.listFavourites({})).favourites.length, 0);

  // The widget's panel (another tab) follows.
  await panel.getByText("暂无收藏").waitFor();
  assert.match(await panel.getByTestId("fav-total").innerText(), /\(0\)/);
  await context.close();
});
