// §1.10-1.11, 1.13-1.15, 1.17-1.18: 收藏 on answers, 热点推荐 / 问答套餐 / 热词 (also in the
// small widget), 快捷入口 管理, 字体大小 and 清屏 / 加载历史.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, taxpayerContext, openWidget as openPage, shot, api, eventually } from "./lib.mjs";

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

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

async function ask(page, text) {
  const before = await page.getByTestId("bot-reply").count();
  const input = page.getByTestId("chat-input");
  await input.fill(text);
  await input.press("Enter");
  await eventually(async () => (await page.getByTestId("bot-reply").count()) > before, 30_000, `a reply to ${text}`);
  return page.getByTestId("bot-reply").last();
}

async function myMessages(page) {
  return page.locator("[data-testid=timeline] .msg.mine").allInnerTexts();
}

test("favourite: the star on an answer adds and removes it in 我的收藏", async (t) => {
  const { context, token } = await taxpayer(t);
  const page = await openWidget(context);
  const reply = await ask(page, "红字确认单怎么发起");
  const question = (await reply.getByTestId("answer-question").innerText()).trim();
  const star = reply.getByTestId("favourite-toggle");
  assert.equal(await star.getAttribute("aria-pressed"), "false");
  const answerApi = api("zhengna.answer.v1.AnswerService", token);
  const listed = async () => (await answerApi.listFavourites({})).favourites.map((f) => f.question);

  await star.click();
  await eventually(async () => (await star.getAttribute("aria-pressed")) === "true", 15_000, "star on");
  assert.match(await star.innerText(), /已收藏/);
  assert.ok((await listed()).includes(question), "stored as a favourite");
  // The 我的收藏 panel beside the chat follows.
  await eventually(async () => (await page.getByTestId("my-favourites").innerText()).includes(question), 15_000, "panel lists it");

  await star.click();
  await eventually(async () => (await star.getAttribute("aria-pressed")) === "false", 15_000, "star off");
  assert.ok(!(await listed()).includes(question), "removed from the favourites");
});

test("discover: 热点推荐 and 问答套餐 tabs; 热词 换一批 and a click asks the word", async (t) => {
  const { context } = await taxpayer(t);
  const page = await openWidget(context);
  const panel = page.locator("aside [data-testid=discover-panel]");
  await panel.getByTestId("hot-question").first().waitFor();
  const words = panel.getByTestId("hot-word");
  await words.first().waitFor();
  await shot(page, "chat-discover-panel");

  const first = await words.allInnerTexts();
  await panel.getByTestId("hot-words-next").click();
  await eventually(async () => (await words.allInnerTexts()).join() !== first.join(), 15_000, "another batch of hot words");
  const word = (await words.first().innerText()).trim();
  await words.first().click();
  await eventually(async () => (await myMessages(page)).some((m) => m.trim() === word), 30_000, "the word sent");
  await eventually(async () => (await page.getByTestId("bot-reply").count()) >= 1, 30_000, "a reply to the word");

  await panel.getByRole("tab", { name: "问答套餐" }).click();
  const pkg = panel.getByTestId("package").first();
  await pkg.waitFor();
  await pkg.click();
  const q = panel.getByTestId("package-question").first();
  await q.waitFor();
  await shot(page, "chat-discover-packages");
  const question = (await q.innerText()).trim();
  const replies = await page.getByTestId("bot-reply").count();
  await q.click();
  await eventually(async () => (await myMessages(page)).some((m) => m.includes(question)), 30_000, "package question sent");
  await eventually(async () => (await page.getByTestId("bot-reply").count()) > replies, 30_000, "answered");
  assert.equal(await page.getByTestId("bot-reply").last().getByTestId("answer-question").innerText(), question);
});

test("discover at 360 px: the strip opens 热点推荐 in a drawer and a hot question is answered", async (t) => {
  const { context } = await taxpayer(t, { viewport: { width: 360, height: 640 } });
  const page = await openWidget(context);
  assert.equal(await page.locator("aside.side").isVisible(), false, "side panel hidden in the small widget");
  await page.getByTestId("discover-open-hot").click();
  const drawer = page.locator(".discover-drawer");
  const hot = drawer.getByTestId("hot-question").first();
  await hot.waitFor();
  await shot(page, "chat-discover-small");
  const question = (await hot.innerText()).trim();
  await hot.click();
  await drawer.waitFor({ state: "hidden" });
  await eventually(async () => (await myMessages(page)).some((m) => m.includes(question)), 30_000, "hot question sent");
  await eventually(async () => (await page.getByTestId("bot-reply").count()) >= 1, 30_000, "answered");
  assert.equal(await page.getByTestId("bot-reply").last().getByTestId("answer-question").innerText(), question);
  await shot(page, "chat-answer-small");
});

test("quick entries: 管理 adds, orders and removes entries; the choice survives a reload", async (t) => {
  const { context, token } = await taxpayer(t);
  const page = await openWidget(context);
  const chips = page.getByTestId("quick-entry");
  await chips.first().waitFor();
  const initial = await chips.allInnerTexts();
  assert.ok(initial.includes("办税地图"), `default entries: ${initial}`);

  await page.getByTestId("quick-more").click();
  const all = page.getByTestId("quick-all-item");
  await all.first().waitFor();
  assert.ok((await all.count()) > initial.length, "更多 lists every entry");
  await shot(page, "chat-quick-entries-more");
  await page.keyboard.press("Escape");
  await all.first().waitFor({ state: "hidden" });

  await page.getByTestId("quick-manage").click();
  await page.getByTestId("quick-add-invoice-check").click();
  await eventually(async () => (await chips.allInnerTexts()).includes("发票查验"), 15_000, "added");
  await page.getByTestId("quick-remove-map").click();
  await eventually(async () => !(await chips.allInnerTexts()).includes("办税地图"), 15_000, "removed");
  // Move 发票查验 (now last) one up.
  await page.getByRole("button", { name: "上移发票查验" }).click();
  const want = initial.filter((x) => x !== "办税地图");
  want.splice(want.length - 1, 0, "发票查验");
  await eventually(async () => (await chips.allInnerTexts()).join() === want.join(), 15_000, "reordered");
  await shot(page, "chat-quick-entries-manage");
  await page.getByTestId("quick-manage-done").click();

  const prefs = await api("zhengna.session.v1.ConversationService", token).getPreferences({ channel: "etax" });
  assert.ok(prefs.preferences.quickEntryIds.includes("invoice-check"));
  assert.ok(!prefs.preferences.quickEntryIds.includes("map"));

  await page.reload();
  await chips.first().waitFor();
  await eventually(async () => (await chips.allInnerTexts()).join() === want.join(), 15_000, "kept after reload");
  await shot(page, "chat-quick-entries");
});

test("font size: 大 enlarges the chat and is remembered", async (t) => {
  const { context, token } = await taxpayer(t);
  const page = await openWidget(context);
  const size = () => page.locator(".chat").evaluate((el) => parseFloat(getComputedStyle(el).fontSize));
  assert.equal(await size(), 14);
  await page.getByTestId("font-size").click();
  await page.getByTestId("font-size-3").click();
  await eventually(async () => (await size()) > 15.5, 15_000, "larger text");
  const prefs = await api("zhengna.session.v1.ConversationService", token).getPreferences({ channel: "etax" });
  assert.equal(prefs.preferences.fontSize, 3); // FONT_SIZE_LARGE
  await page.reload();
  await page.getByTestId("welcome").waitFor();
  await eventually(async () => (await size()) > 15.5, 15_000, "still larger after reload");
  await shot(page, "chat-font-large");
});

test("清屏 asks first, hides the chat, and 加载历史 brings it back", async (t) => {
  const { context } = await taxpayer(t);
  const page = await openWidget(context);
  await ask(page, "红字确认单怎么发起");
  const messages = page.locator("[data-testid=timeline] [data-testid=message]");
  assert.ok((await messages.count()) >= 2);

  // Cancelling keeps everything.
  await page.getByTestId("clear-screen").click();
  await page.getByRole("button", { name: "取消" }).click();
  assert.ok((await messages.count()) >= 2);

  await page.getByTestId("clear-screen").click();
  await page.getByRole("dialog").getByText("清屏将清除当前聊天信息").waitFor();
  await shot(page, "chat-clear-confirm");
  await page.getByRole("button", { name: "确定清屏" }).click();
  await eventually(async () => (await messages.count()) === 0, 15_000, "cleared view");
  await page.getByTestId("timeline-load-history").waitFor();
  await shot(page, "chat-cleared");

  await page.getByTestId("load-history").click();
  await eventually(async () => (await messages.count()) >= 2, 15_000, "history restored");
  assert.ok((await myMessages(page)).some((m) => m.includes("红字确认单怎么发起")));
  assert.equal(await page.getByTestId("timeline-load-history").count(), 0);
});
