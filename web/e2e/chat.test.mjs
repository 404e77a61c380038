// §1.2-1.4, 1.6, 1.8, 1.9: rich bot answers, 猜你想问, 多轮互动, 有效性反馈 and 智能联想.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, taxpayerContext, openWidget as openPage, shot, api, eventually } from "./lib.mjs";

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

/** A fresh taxpayer whose browser context is closed when the test ends, pass or fail. */
async function taxpayer(t, opts) {
  const r = await taxpayerContext(browser, opts);
  t.after(() => r.context.close());
  return r;
}

/** The chat, once its conversation is open and caught up (the welcome shows then). */
async function openWidget(context) {
  const page = await openPage(context);
  await page.getByTestId("welcome").waitFor();
  return page;
}

/** Types a question and sends it with Enter; resolves with the newest bot reply locator. */
async function ask(page, text) {
  const before = await page.getByTestId("bot-reply").count();
  const input = page.getByTestId("chat-input");
  await input.fill(text);
  await input.press("Enter");
  try {
    await eventually(async () => (await page.getByTestId("bot-reply").count()) > before, 30_000, `a reply to ${text}`);
  } catch (e) {
    await shot(page, "chat-failed-ask");
    throw e;
  }
  // Pinned to this reply (a plain .last() would move on to later replies).
  return page.getByTestId("bot-reply").nth(before);
}

/** Texts of the taxpayer's own messages in the timeline. */
async function myMessages(page) {
  return page.locator("[data-testid=timeline] .msg.mine").allInnerTexts();
}

test("answer: welcome, then a rich answer with steps, 政策依据 and 猜你想问; a suggestion is asked", async (t) => {
  const { context } = await taxpayer(t);
  const page = await openWidget(context);
  await page.getByTestId("welcome").waitFor();
  assert.match(await page.getByTestId("welcome").innerText(), /税务虚拟员工/);

  const reply = await ask(page, "红字确认单怎么发起");
  assert.equal(await reply.getAttribute("data-decision"), "answer");
  assert.match(await reply.getByTestId("answer-question").innerText(), /红字/);
  assert.ok((await reply.locator("[data-testid=block-steps] li").count()) >= 2, "numbered steps are rendered");
  assert.ok((await reply.getByTestId("citation").count()) >= 1, "policy basis is listed");
  const suggestions = reply.getByTestId("suggestion");
  assert.ok((await suggestions.count()) >= 1, "猜你想问 questions are offered");
  await shot(page, "chat-answer-rich");

  const question = (await suggestions.first().innerText()).trim();
  await suggestions.first().click();
  await eventually(async () => (await myMessages(page)).some((t) => t.includes(question)), 30_000, "the clicked question echoed");
  await eventually(async () => (await page.getByTestId("bot-reply").count()) >= 2, 30_000, "an answer to the suggestion");
  const second = page.getByTestId("bot-reply").last();
  await second.getByTestId("answer-question").waitFor();
  assert.equal(await second.getByTestId("answer-question").innerText(), question);
});

test(
  "clarify: 发票 → 开具发票 → 在哪开、怎么开 takes two rounds of options to an answer",
  async (t) => {
    const { context } = await taxpayer(t);
    const page = await openWidget(context);
    const first = await ask(page, "发票");
    assert.equal(await first.getAttribute("data-decision"), "clarify");
    const clar = first.getByTestId("clarification");
    assert.match(await clar.innerText(), /请问您想咨询发票的哪方面问题/);
    assert.ok((await clar.getByTestId("clarify-option").count()) >= 2);
    await shot(page, "chat-clarification");

    await clar.getByTestId("clarify-option").filter({ hasText: "开具发票" }).click();
    const refused = first.locator("[role=alert]");
    const echo = page.locator("[data-testid=timeline] .msg.mine").filter({ hasText: "开具发票" });
    await echo.or(refused).first().waitFor();
    if (await refused.count()) assert.fail(`option refused: ${await refused.innerText()}`);
    await eventually(async () => (await page.getByTestId("bot-reply").count()) >= 2, 30_000, "second round");
    const second = page.getByTestId("bot-reply").last();
    assert.equal(await second.getAttribute("data-decision"), "clarify");
    assert.match(await second.innerText(), /请问开票时遇到的是哪类问题/);
    // The first round's options are used up.
    assert.ok(await clar.getByTestId("clarify-option").first().isDisabled());
    await shot(page, "chat-clarification-round2");

    await second.getByTestId("clarify-option").filter({ hasText: "在哪开、怎么开" }).click();
    await eventually(async () => (await page.getByTestId("bot-reply").count()) >= 3, 30_000, "the answer");
    const third = page.getByTestId("bot-reply").last();
    assert.equal(await third.getAttribute("data-decision"), "answer");
    await third.getByTestId("answer-question").waitFor();
  },
);

test("clarify: the first round offers the options of the tree", async (t) => {
  const { context } = await taxpayer(t, { viewport: { width: 420, height: 720 } });
  const page = await openWidget(context);
  const first = await ask(page, "发票");
  assert.equal(await first.getAttribute("data-decision"), "clarify");
  const labels = await first.getByTestId("clarify-option").allInnerTexts();
  assert.ok(labels.includes("开具发票") && labels.includes("发票开错了"), `options: ${labels}`);
  await shot(page, "chat-clarification-small");
});

test("autocomplete: ↓ and Enter send the highlighted question instead of the draft; Esc closes", async (t) => {
  const { context } = await taxpayer(t);
  const page = await openWidget(context);
  const input = page.getByTestId("chat-input");
  await input.fill("红字");
  const list = page.getByTestId("autocomplete");
  await list.waitFor({ state: "visible" });
  const items = list.getByTestId("autocomplete-item");
  assert.ok((await items.count()) >= 1);
  assert.match(await items.first().locator("mark").first().innerText(), /红|字/, "typed text is highlighted");
  await shot(page, "chat-autocomplete");

  await input.press("Escape");
  await list.waitFor({ state: "hidden" });
  await input.fill("红字发");
  await list.waitFor({ state: "visible" });

  await input.press("ArrowDown");
  await eventually(async () => (await items.first().getAttribute("aria-selected")) === "true", 5_000, "first highlighted");
  const picked = (await items.first().innerText()).trim();
  const replies = await page.getByTestId("bot-reply").count();
  await input.press("Enter");
  await eventually(async () => (await myMessages(page)).some((t) => t.includes(picked)), 30_000, "picked question sent");
  await eventually(async () => (await page.getByTestId("bot-reply").count()) > replies, 30_000, "answered");
  assert.equal(await input.inputValue(), "", "input cleared");
  const mine = await myMessages(page);
  assert.ok(!mine.some((t) => t.trim() === "红字发"), "the raw draft was not sent");
  assert.equal(mine.length, 1, "exactly one message sent");
});

test("feedback: 无用 opens the reason panel; the reason is stored once; a second verdict is refused", async (t) => {
  const { context, token } = await taxpayer(t);
  const page = await openWidget(context);
  const reply = await ask(page, "红字确认单怎么发起");
  const replyId = await reply.getAttribute("data-reply-id");
  assert.ok(replyId);
  const fb = reply.getByTestId("feedback");
  await fb.getByTestId("feedback-useless").click();
  const panel = fb.getByTestId("feedback-reason");
  await panel.waitFor();
  assert.match(await panel.innerText(), /答非所问[\s\S]*答案错误[\s\S]*其他/);
  assert.ok(await fb.getByTestId("feedback-useful").isDisabled(), "verdict buttons used up");
  // 其他 needs a comment.
  await panel.getByText("其他", { exact: true }).click();
  assert.ok(await panel.getByTestId("feedback-submit").isDisabled());
  await panel.getByText("答案错误", { exact: true }).click();
  await panel.locator("textarea").fill("菜单名称和实际页面不一致");
  await panel.locator(".el-radio.is-checked").filter({ hasText: "答案错误" }).waitFor();
  assert.ok(await panel.getByTestId("feedback-submit").isEnabled());
  await shot(page, "chat-feedback-panel");
  await panel.getByTestId("feedback-submit").click();
  await panel.waitFor({ state: "detached" });
  assert.match(await fb.getByTestId("feedback-prompt").innerText(), /感谢/);
  assert.ok(await fb.getByTestId("feedback-useless").isDisabled());

  // The server holds the verdict: another one is refused.
  const answerApi = api("zhengna.answer.v1.AnswerService", token);
  await assert.rejects(
    answerApi.submitFeedback({ replyId, verdict: 1 }),
    (e) => e.code === 9, // FAILED_PRECONDITION
  );

  // A reply judged elsewhere: the click shows the server's kind refusal.
  const other = await ask(page, "数电发票开错了怎么处理");
  const otherId = await other.getAttribute("data-reply-id");
  await answerApi.submitFeedback({ replyId: otherId, verdict: 1 });
  await other.getByTestId("feedback-useless").click();
  const error = other.getByTestId("feedback-error");
  await error.waitFor();
  assert.match(await error.innerText(), /已评价/);
  assert.ok(await other.getByTestId("feedback-useful").isDisabled());
});

test("feedback: 有用 thanks the taxpayer and disables both buttons", async (t) => {
  const { context } = await taxpayer(t);
  const page = await openWidget(context);
  const reply = await ask(page, "红字确认单怎么发起");
  await reply.getByTestId("feedback-useful").click();
  await reply.getByTestId("feedback-prompt").waitFor();
  assert.match(await reply.getByTestId("feedback-prompt").innerText(), /感谢/);
  assert.ok(await reply.getByTestId("feedback-useless").isDisabled());
  assert.equal(await reply.getByTestId("feedback-reason").count(), 0);
});

test("no answer: the reply offers 转人工 and 留言, which notify the human and forms areas", async (t) => {
  const { context } = await taxpayer(t);
  const page = await openWidget(context);
  const reply = await ask(page, "火星移民签证怎么办");
  assert.equal(await reply.getAttribute("data-decision"), "no-answer");
  assert.match(await reply.getByTestId("reply-text").innerText(), /抱歉/);
  await shot(page, "chat-no-answer");
  await page.evaluate(() => {
    window.__znEvents = [];
    for (const name of ["zhengna:transfer", "zhengna:leave-message"]) {
      window.addEventListener(name, (e) => window.__znEvents.push({ name, detail: e.detail }));
    }
  });
  await reply.getByTestId("reply-offer-leave-message").click();
  // The forms area opens its 留言 dialog.
  const dialog = page.getByRole("dialog", { name: "在线留言" });
  await dialog.waitFor();
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  await reply.getByTestId("reply-offer-transfer").click();
  const events = await page.evaluate(() => window.__znEvents);
  assert.deepEqual(
    events.map((e) => e.name),
    ["zhengna:leave-message", "zhengna:transfer"],
  );
  assert.equal(events[0].detail.text, "火星移民签证怎么办", "留言 is prefilled with the question");
  assert.equal(events[1].detail.trigger, "no_answer");
});
