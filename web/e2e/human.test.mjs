// §3 人工互动: 转人工 and the queue card (当前等候人数, live position, 取消排队), the agent joining,
// text / emoji / image / file both ways, refused uploads, 结束会话 (cancel, confirm, refused
// while 转接中), the ended state and 服务评价 (once).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { launch, taxpayerContext, openWidget, shot, api, devToken, uniqueSub, eventually } from "./lib.mjs";
import {
  onlineAgent,
  askForHuman,
  claim,
  servedChat,
  agentSays,
  agentSees,
  transcript,
  shownSeqs,
  makePng,
  makePdf,
  agentSendsFile,
  text,
} from "./human-helpers.mjs";

/** A grpc-web response body (one message frame, then the OK trailer frame). */
function grpcWebBody(typeName, init) {
  const msg = toBinary(registry.getMessage(typeName), create(registry.getMessage(typeName), init));
  const trailer = Buffer.from("grpc-status: 0\r\ngrpc-message: \r\n");
  const frame = (flag, bytes) => {
    const head = Buffer.alloc(5);
    head[0] = flag;
    head.writeUInt32BE(bytes.length, 1);
    return Buffer.concat([head, Buffer.from(bytes)]);
  };
  return Buffer.concat([frame(0, msg), frame(0x80, trailer)]);
}

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

const registry = createFileRegistry(
  fromBinary(FileDescriptorSetSchema, readFileSync(new URL("../../crates/proto/src/gen/descriptor.bin", import.meta.url))),
);
const ALREADY_EXISTS = 6;
const QUEUE_STATE_CANCELLED = 3;
const TRIGGER_NO_ANSWER = 3;

test("转人工: queue card, agent joins, messages both ways, uploads, agent ends, rating once", async () => {
  const agent = await onlineAgent();
  const { context, token } = await taxpayerContext(browser);
  const page = await openWidget(context);

  // 转人工 → the queue card with the number of people waiting.
  const entryId = await askForHuman(page);
  const card = page.getByTestId("queue-card");
  const waiting = await eventually(async () => {
    const n = Number(await card.getByTestId("queue-waiting").textContent());
    return n >= 1 ? n : null;
  }, 20_000, "当前等候人数");
  assert.ok(waiting >= 1);
  assert.match(await card.innerText(), /当前等候人数/);
  assert.ok(await card.getByTestId("queue-cancel").isVisible(), "取消排队 is offered while waiting");
  await shot(page, "human-queue-card");

  // The agent calls this taxpayer: the card gives way to the agent banner.
  const conversationId = await claim(agent, entryId);
  const banner = page.getByTestId("agent-banner");
  await banner.waitFor();
  assert.match(await banner.innerText(), /王税官/);
  await card.waitFor({ state: "detached" });
  await page.getByTestId("system-notice").filter({ hasText: "已接入" }).first().waitFor();

  // Agent → taxpayer.
  await agentSays(agent, conversationId, "您好，我是王税官，请问有什么可以帮您？");
  const agentMsg = page.locator(".msg.agent").filter({ hasText: "请问有什么可以帮您" });
  await agentMsg.waitFor();
  assert.match(await agentMsg.innerText(), /王税官/);

  // Taxpayer → agent: text, an emoji, an image.
  const input = page.getByTestId("chat-input");
  await input.fill("我想咨询一下开具红字发票的流程");
  await input.press("Enter");
  await page.locator(".msg.mine").filter({ hasText: "红字发票的流程" }).waitFor();

  await page.getByTestId("emoji-button").click();
  await page.getByTestId("emoji-panel").waitFor();
  await page.locator("[data-testid=emoji-item][data-code=thumbs_up]").click();
  await page.locator("[data-testid=emoji-message][data-code=thumbs_up]").waitFor();

  const png = makePng(80, 60);
  await page.getByTestId("image-input").setInputFiles({ name: "发票截图.png", mimeType: "image/png", buffer: png });
  const thumb = page.locator(".msg.mine [data-testid=image-thumb] img");
  await thumb.waitFor();
  await page.waitForFunction(() => {
    const img = document.querySelector(".msg.mine [data-testid=image-thumb] img");
    return img && img.complete && img.naturalWidth === 80;
  });

  // Agent → taxpayer: a file card with a working download.
  await agentSendsFile(agent, conversationId, "办税指南.pdf", makePdf(4096));
  const fileCard = page.locator(".msg.agent [data-testid=file-card]");
  await fileCard.waitFor();
  assert.match(await fileCard.innerText(), /办税指南\.pdf/);
  await shot(page, "human-agent-chat");
  const [download] = await Promise.all([page.waitForEvent("download"), fileCard.getByTestId("file-download").click()]);
  assert.equal(download.suggestedFilename(), "办税指南.pdf");

  // The agent sees the text, the emoji and the image, described by what the server stored.
  const seen = await agentSees(agent, conversationId, (ms) => {
    const fromTp = ms.filter((m) => m.sender === 1);
    const t = fromTp.find((m) => m.content?.body.case === "text" && m.content.body.value.text.includes("红字发票的流程"));
    const e = fromTp.find((m) => m.content?.body.case === "emoji");
    const i = fromTp.find((m) => m.content?.body.case === "image");
    return t && e && i ? { e, i } : null;
  });
  assert.equal(seen.e.content.body.value.code, "thumbs_up");
  assert.equal(seen.i.content.body.value.attachment.fileName, "发票截图.png");
  assert.equal(seen.i.content.body.value.attachment.contentType, "image/png");
  assert.equal(Number(seen.i.content.body.value.attachment.sizeBytes), png.length);

  // A wrong type is refused before anything is sent, in Chinese; so is an oversized file.
  await page.getByTestId("file-input").setInputFiles({ name: "setup.exe", mimeType: "application/octet-stream", buffer: Buffer.from("MZ") });
  const err = page.getByTestId("human-error");
  await err.waitFor();
  assert.match(await err.innerText(), /文件格式不支持.*pdf/);
  await page.getByTestId("image-input").setInputFiles({ name: "报表.xlsx", mimeType: "application/octet-stream", buffer: Buffer.from("PK") });
  await page.getByTestId("human-error").filter({ hasText: "图片格式不支持" }).waitFor();
  await page.getByTestId("file-input").setInputFiles({ name: "大文件.pdf", mimeType: "application/pdf", buffer: makePdf(10 * 1024 * 1024) });
  await page.getByTestId("human-error").filter({ hasText: "小于10MB" }).waitFor();
  // Content that does not match its extension is refused by the server, also in Chinese.
  await page.getByTestId("image-input").setInputFiles({ name: "伪装.png", mimeType: "image/png", buffer: Buffer.alloc(2048, 0x41) });
  await page.getByTestId("human-error").filter({ hasText: "不符" }).waitFor();
  const images = (await transcript(agent, conversationId)).filter((m) => m.content?.body.case === "image");
  assert.equal(images.length, 1, "refused files never reach the agent");

  // The agent ends the service: the ended state and the rating card.
  await agent.chat.closeConversation({ conversationId });
  await page.getByTestId("ended-banner").waitFor();
  const rating = page.getByTestId("rating-card");
  await rating.waitFor();
  assert.equal(await page.getByTestId("end-session").count(), 0, "no 结束会话 once ended");
  assert.equal(await page.getByTestId("emoji-button").count(), 0, "no human tools once ended");
  assert.ok(await rating.getByTestId("rating-submit").isDisabled(), "提交 needs a choice");
  await rating.getByTestId("rate-resolved").click();
  await rating.getByTestId("rating-comment").fill("解答很清楚，谢谢");
  await rating.getByTestId("rating-submit").click();
  await rating.getByTestId("rating-thanks").waitFor();
  assert.equal(await rating.getAttribute("data-rated"), "true");
  for (const id of ["rate-resolved", "rate-unresolved", "rating-submit"]) {
    assert.ok(await rating.getByTestId(id).isDisabled(), `${id} is disabled after rating`);
  }
  await shot(page, "human-rating-card");

  // A second rating is refused by the server.
  const chat = api("zhengna.session.v1.ConversationService", token);
  await assert.rejects(chat.rateConversation({ conversationId, result: 2, comment: "" }), (e) => e.code === ALREADY_EXISTS);
  await context.close();
});

test("排队时智能助手继续回答；取消排队需要确认", async () => {
  const agent = await onlineAgent();
  const { context } = await taxpayerContext(browser);
  const page = await openWidget(context);
  const entryId = await askForHuman(page);
  const card = page.getByTestId("queue-card");
  await page.getByTestId("system-notice").filter({ hasText: "排队" }).first().waitFor();

  // While queued the bot keeps answering.
  const input = page.getByTestId("chat-input");
  await input.fill("红字确认单怎么发起");
  await input.press("Enter");
  await page.locator(".msg.bot").filter({ hasText: "红字" }).last().waitFor();
  assert.ok(await card.isVisible(), "still queued");

  // 取消排队 → 继续排队 keeps the place.
  await card.getByTestId("queue-cancel").click();
  const box = page.locator(".zn-cancel-queue-confirm");
  await box.waitFor();
  await box.getByRole("button", { name: "继续排队" }).click();
  await box.waitFor({ state: "hidden" });
  assert.ok(await card.isVisible(), "still queued after 继续排队");

  // 取消排队 → 确定 leaves the line.
  await card.getByTestId("queue-cancel").click();
  await box.waitFor();
  await box.getByRole("button", { name: "确定" }).click();
  await card.waitFor({ state: "detached" });
  await page.getByTestId("system-notice").filter({ hasText: "您已取消排队" }).waitFor();
  await page.getByTestId("transfer-human").waitFor();
  const cancelled = await agent.desk.listQueueEntries({ states: [QUEUE_STATE_CANCELLED], page: { pageSize: 100, pageToken: "" } });
  assert.ok(cancelled.entries.some((e) => e.id === entryId), "the entry is cancelled on the server");
  await assert.rejects(agent.desk.claimEntry({ entryId }), "a cancelled entry cannot be called");
  await context.close();
});

test("live position: the place ahead moves up when the agent calls the taxpayer in front", async () => {
  const agent = await onlineAgent();
  // Someone else queues first (through the API).
  const other = await devToken("taxpayer-jinan", uniqueSub("B"));
  const otherChat = api("zhengna.session.v1.ConversationService", other);
  const otherConv = (await otherChat.startConversation({ channel: "etax" })).conversation;
  const ahead = await api("zhengna.queue.v1.QueueService", other).enqueueForHuman({ conversationId: otherConv.id, trigger: 1 });

  const { context } = await taxpayerContext(browser);
  const page = await openWidget(context);
  const entryId = await askForHuman(page);
  const aheadCount = page.getByTestId("queue-ahead");
  const before = await eventually(async () => {
    const n = Number(await aheadCount.textContent());
    return n >= 1 ? n : null;
  }, 20_000, "people ahead");

  // (On a shared platform another agent may call that taxpayer first: the place moves up all the same.)
  const claimed = await agent.desk.claimEntry({ entryId: ahead.entry.id }).then(() => true, () => false);
  await eventually(async () => Number(await aheadCount.textContent()) < before, 30_000, "the position to move up");
  if (claimed) {
    // The session learns of the assignment from the queue's event, a moment later.
    await eventually(() => agent.chat.closeConversation({ conversationId: otherConv.id, skipRating: true }), 20_000, "closing");
  }
  await claim(agent, entryId);
  await page.getByTestId("agent-banner").waitFor();
  await context.close();
});

test("a transfer offer (window event 'zhengna:transfer') queues with its trigger", async () => {
  const agent = await onlineAgent();
  const { context } = await taxpayerContext(browser);
  const page = await openWidget(context);
  await page.evaluate(() => window.dispatchEvent(new CustomEvent("zhengna:transfer", { detail: { trigger: "no_answer" } })));
  const card = page.getByTestId("queue-card");
  await card.waitFor();
  const entryId = await eventually(async () => (await card.getAttribute("data-entry-id")) || null);
  const list = await agent.desk.listQueueEntries({ page: { pageSize: 100, pageToken: "" } });
  const entry = list.entries.find((e) => e.id === entryId);
  assert.ok(entry, "the entry waits in the agent's line");
  assert.equal(entry.trigger, TRIGGER_NO_ANSWER);
  await claim(agent, entryId);
  await page.getByTestId("agent-banner").waitFor();
  await context.close();
});

test("结束会话: 取消 keeps the service, refused while 转接中, 确定 ends it", async () => {
  const agent = await onlineAgent();
  const { context } = await taxpayerContext(browser);
  const page = await openWidget(context);
  const { conversationId, entryId } = await servedChat(page, agent);

  const box = page.locator(".zn-end-confirm");
  await page.getByTestId("end-session").click();
  await box.waitFor();
  assert.match(await box.innerText(), /确定要结束本次会话吗/);
  await box.getByRole("button", { name: "取消" }).click();
  await box.waitFor({ state: "hidden" });
  assert.ok(await page.getByTestId("agent-banner").isVisible(), "still served after 取消");

  // 转接中: the server refuses and the taxpayer reads why.
  await agent.desk.transferConversation({ conversationId, target: { case: "skillGroupId", value: "" }, note: "" });
  await page.getByTestId("transferring-card").waitFor();
  await page.getByTestId("end-session").click();
  await box.waitFor();
  await box.getByRole("button", { name: "确定" }).click();
  await page.getByTestId("human-error").filter({ hasText: "转接" }).waitFor();
  assert.equal(await page.getByTestId("ended-banner").count(), 0);

  // Called again (the same entry waits in the line again), then ended by the taxpayer.
  await agent.desk.claimEntry({ entryId });
  await page.getByTestId("agent-banner").waitFor();
  await page.getByTestId("end-session").click();
  await box.waitFor();
  await box.getByRole("button", { name: "确定" }).click();
  await page.getByTestId("ended-banner").waitFor();
  await page.getByTestId("system-notice").filter({ hasText: "您已结束本次会话" }).waitFor();
  await assert.rejects(
    agent.chat.sendAgentMessage({ conversationId, clientMsgId: randomUUID(), content: text("还在吗？") }),
    "the agent can no longer write",
  );
  await shot(page, "human-ended");

  // Writing again starts a new consultation with the bot.
  const input = page.getByTestId("chat-input");
  await input.fill("你好");
  await input.press("Enter");
  await page.getByTestId("ended-banner").waitFor({ state: "detached" });
  await page.getByTestId("transfer-human").waitFor();
  await context.close();
});

test("outside business hours: 转人工 offers 留言 and 预约 instead of queueing", async () => {
  const { context } = await taxpayerContext(browser);
  const page = await openWidget(context);
  // The office's hours are shared by every test, so the CLOSED answer is played back here.
  const closed = grpcWebBody("zhengna.queue.v1.EnqueueForHumanResponse", {
    outcome: 3, // ENQUEUE_OUTCOME_CLOSED
    notice: "当前为非工作时间，您可以留言或预约互动",
    businessHours: { openNow: false, notice: "人工服务时间为工作日 9:00-12:00、13:30-17:00" },
    offerLeaveMessage: true,
    offerAppointment: true,
  });
  await page.route("**/zhengna.queue.v1.QueueService/EnqueueForHuman", (route) =>
    route.fulfill({ status: 200, headers: { "content-type": "application/grpc-web+proto" }, body: closed }),
  );
  await page.evaluate(() => {
    window.__offers = [];
    for (const t of ["zhengna:leave-message", "zhengna:appointment"]) window.addEventListener(t, () => window.__offers.push(t));
  });
  await page.getByTestId("transfer-human").click();
  const dialog = page.getByRole("dialog", { name: "人工服务暂未开放" });
  await dialog.waitFor();
  assert.match(await dialog.innerText(), /非工作时间/);
  assert.match(await dialog.innerText(), /9:00-12:00/);
  assert.equal(await page.getByTestId("queue-card").count(), 0, "nothing was queued");
  await page.waitForFunction(() => document.getAnimations().every((x) => x.playState !== "running"));
  await shot(page, "human-closed");
  await dialog.getByTestId("offer-leave-message").click();
  await dialog.waitFor({ state: "hidden" });
  // The chat's 留言 form answers the event; close it and ask again.
  const leave = page.getByRole("dialog", { name: "在线留言" });
  if (await leave.waitFor({ timeout: 5_000 }).then(() => true, () => false)) {
    await page.keyboard.press("Escape");
    await leave.waitFor({ state: "hidden" });
  }
  await page.getByTestId("transfer-human").click();
  await dialog.waitFor();
  await dialog.getByTestId("offer-appointment").click();
  assert.deepEqual(await page.evaluate(() => window.__offers), ["zhengna:leave-message", "zhengna:appointment"]);
  await context.close();
});

// Resuming after a reload, and the rating request when the taxpayer ends a served chat.

test(
  "加载更多 after a reload pages back through a long conversation",
  async () => {
    const agent = await onlineAgent();
    const { context } = await taxpayerContext(browser);
    const page = await openWidget(context);
    const { conversationId } = await servedChat(page, agent);
    let last;
    for (let i = 1; i <= 60; i++) {
      // Paced: the gateway rate-limits a burst of sends.
      last = await eventually(() => agentSays(agent, conversationId, `第${i}条说明`), 30_000, "a paced send");
    }
    await page.locator(`[data-testid=message][data-seq="${last.seq}"]`).waitFor();
    await page.reload();
    await page.locator(`[data-testid=message][data-seq="${last.seq}"]`).waitFor();
    await page.getByTestId("agent-banner").waitFor();
    const more = page.getByTestId("load-more");
    assert.ok((await shownSeqs(page))[0] > 1, "a long conversation opens on its latest messages");
    // Click until everything is loaded; each click waits for the previous load to finish
    // (the button disappears once the first message is shown).
    const loading = page.locator("[data-testid=load-more].is-loading");
    for (let i = 0; i < 20; i++) {
      await loading.waitFor({ state: "detached" });
      if ((await more.count()) === 0) break;
      await more.click();
    }
    await loading.waitFor({ state: "detached" });
    const shown = await shownSeqs(page);
    assert.equal(shown[0], 1);
    for (let i = 1; i < shown.length; i++) assert.equal(shown[i], shown[i - 1] + 1);
    await context.close();
  },
);

test(
  "结束会话 by the taxpayer while served posts the rating request",
  async () => {
    const agent = await onlineAgent();
    const { context } = await taxpayerContext(browser);
    const page = await openWidget(context);
    const { conversationId } = await servedChat(page, agent);
    // The agent's console is connected (its conversation stream is open), so the taxpayer
    // ending the chat gets the rating request (§3.9.3 #3: not after the agent dropped off).
    const console_ = new AbortController();
    let connected;
    const opened = new Promise((r) => (connected = r));
    (async () => {
      try {
        for await (const _ of agent.chat.subscribeConversation({ conversationId, afterSeq: 0n }, { signal: console_.signal })) {
          connected(); // the first event: the console's stream is open
        }
      } catch {
        // aborted at the end of the test
      }
    })();
    try {
      await opened;
      await page.getByTestId("end-session").click();
    await page.locator(".zn-end-confirm").getByRole("button", { name: "确定" }).click();
    await page.getByTestId("ended-banner").waitFor();
      await page.getByTestId("rating-card").waitFor({ timeout: 15_000 });
    } finally {
      console_.abort();
    }
    await context.close();
  },
);
