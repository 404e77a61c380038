// §1.1: the host page, the floating icon, maximise / minimise, and the personal centre link;
// §1.2: a question answered by the bot.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, taxpayerContext, openWidget, shot } from "./lib.mjs";

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

test("host page: floating icon opens, maximises and minimises the widget", async () => {
  const { context } = await taxpayerContext(browser);
  const page = await context.newPage();
  await page.goto("/");
  const fab = page.getByTestId("zhengna-fab");
  await fab.waitFor();
  await shot(page, "host-page");
  await fab.click();
  const panel = page.getByTestId("zhengna-panel");
  await panel.waitFor({ state: "visible" });
  const frame = page.frameLocator("[data-testid=zhengna-panel] iframe");
  await frame.getByTestId("chat-input").waitFor();
  const small = await panel.boundingBox();
  await frame.getByTestId("maximise").click();
  await page.waitForFunction(() => window.ZhengnaWidget.state() === "max");
  const big = await panel.boundingBox();
  assert.ok(big.width > small.width && big.height >= small.height, "maximised panel is larger");
  await frame.getByTestId("minimise").click();
  await panel.waitFor({ state: "hidden" });
  assert.ok(await fab.isVisible(), "the icon is back");
  await context.close();
});

test("chat: Enter sends a question and the bot answers from the knowledge base", async () => {
  const { context } = await taxpayerContext(browser);
  const page = await openWidget(context);
  const input = page.getByTestId("chat-input");
  await input.fill("红字确认单怎么发起");
  assert.equal(await page.getByTestId("counter").textContent(), "9/300");
  await input.press("Enter");
  const bot = page.locator(".msg.bot").last();
  await bot.waitFor();
  assert.match(await bot.innerText(), /红字/);
  await shot(page, "chat-answer");
  await context.close();
});
