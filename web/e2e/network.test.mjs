// Delivery across network trouble: the conversation stream resumes with after_seq, so what was
// said while the page was offline (or its stream kept failing) shows up exactly once and in
// order; a send whose response was lost is retried with the same client id and stored once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, taxpayerContext, openWidget, shot, eventually } from "./lib.mjs";
import { onlineAgent, servedChat, agentSays, transcript, shownSeqs } from "./human-helpers.mjs";

let browser;
before(async () => (browser = await launch()));
after(async () => browser?.close());

/** Every message shown once, consecutive seqs, and exactly the server's transcript. */
async function assertExactlyOnceInOrder(page, agent, conversationId) {
  const server = await transcript(agent, conversationId);
  const last = server[server.length - 1];
  await page.locator(`[data-testid=message][data-seq="${last.seq}"]`).waitFor();
  const shown = await shownSeqs(page);
  assert.equal(new Set(shown).size, shown.length, `no message shown twice: ${shown}`);
  for (let i = 1; i < shown.length; i++) assert.equal(shown[i], shown[i - 1] + 1, `in order, no gap: ${shown}`);
  assert.deepEqual(shown, server.map((m) => Number(m.seq)), "the page shows the server's transcript");
  assert.equal(await page.getByTestId("pending").count(), 0, "nothing left pending");
}

test("offline: what the agent said meanwhile and what the taxpayer typed arrive once, in order", async () => {
  const agent = await onlineAgent();
  const { context } = await taxpayerContext(browser);
  const page = await openWidget(context);
  const { conversationId } = await servedChat(page, agent);
  await agentSays(agent, conversationId, "您好，请讲。");
  await page.locator(".msg.agent").filter({ hasText: "您好，请讲" }).waitFor();
  await page.locator(".link-state[data-link=live]").waitFor({ state: "attached" });

  await context.setOffline(true);
  await page.locator(".link-state[data-link=reconnecting]").waitFor();
  assert.match(await page.locator(".link-state").innerText(), /正在重新连接/);
  const sent = [];
  for (let i = 1; i <= 5; i++) sent.push(await agentSays(agent, conversationId, `断网期间的第${i}条消息`));
  const input = page.getByTestId("chat-input");
  await input.fill("我这边网络断了一下");
  await input.press("Enter");
  await page.getByTestId("pending").filter({ hasText: "我这边网络断了一下" }).waitFor();
  await shot(page, "network-offline");

  await context.setOffline(false);
  for (const m of sent) await page.locator(`[data-testid=message][data-seq="${m.seq}"]`).waitFor();
  await page.locator(".msg.mine").filter({ hasText: "我这边网络断了一下" }).waitFor();
  await page.locator(".link-state[data-link=live]").waitFor({ state: "attached" });
  assert.equal(await page.locator(".msg.mine").filter({ hasText: "我这边网络断了一下" }).count(), 1);
  await assertExactlyOnceInOrder(page, agent, conversationId);
  await context.close();
});

test("a stream that keeps failing reconnects with after_seq: no gap, no duplicate", async () => {
  const agent = await onlineAgent();
  const { context } = await taxpayerContext(browser);
  const page = await openWidget(context);
  const { conversationId } = await servedChat(page, agent);

  // New streams are cut off; the open one is dropped (as when the browser reports online).
  let refused = 0;
  const subscribe = "**/zhengna.session.v1.ConversationService/Subscribe";
  await page.route(subscribe, (route) => {
    refused++;
    // The page may have given up on the request already.
    return route.abort("connectionreset").catch(() => undefined);
  });
  await page.evaluate(() => window.dispatchEvent(new Event("online")));
  const sent = [];
  for (let i = 1; i <= 4; i++) sent.push(await agentSays(agent, conversationId, `重连期间的第${i}条消息`));
  await eventually(() => refused >= 2, 30_000, "two refused reconnects");
  await page.unroute(subscribe);
  for (const m of sent) await page.locator(`[data-testid=message][data-seq="${m.seq}"]`).waitFor();

  // Reconnecting over and over while messages keep coming never shows one twice.
  for (let i = 1; i <= 4; i++) {
    await page.evaluate(() => window.dispatchEvent(new Event("online")));
    sent.push(await agentSays(agent, conversationId, `反复重连时的第${i}条消息`));
  }
  for (const m of sent) await page.locator(`[data-testid=message][data-seq="${m.seq}"]`).waitFor();
  await assertExactlyOnceInOrder(page, agent, conversationId);
  await context.close();
});

test("a send whose response is lost is retried with the same id and stored once", async () => {
  const agent = await onlineAgent();
  const { context } = await taxpayerContext(browser);
  const page = await openWidget(context);
  const { conversationId } = await servedChat(page, agent);

  // The first SendMessage reaches the server, but its answer never reaches the page.
  let lost = 0;
  const sendUrl = "**/zhengna.session.v1.ConversationService/SendMessage";
  await page.route(sendUrl, async (route) => {
    if (lost === 0) {
      lost++;
      await route.fetch();
      return route.abort("connectionreset").catch(() => undefined);
    }
    return route.continue().catch(() => undefined);
  });
  const input = page.getByTestId("chat-input");
  await input.fill("请问发票丢失怎么处理");
  await input.press("Enter");
  await page.locator(".msg.mine").filter({ hasText: "请问发票丢失怎么处理" }).waitFor();
  assert.equal(lost, 1);
  await page.unroute(sendUrl);

  const server = await transcript(agent, conversationId);
  const copies = server.filter((m) => m.content?.body.case === "text" && m.content.body.value.text === "请问发票丢失怎么处理");
  assert.equal(copies.length, 1, "stored once");
  assert.equal(await page.locator(".msg.mine").filter({ hasText: "请问发票丢失怎么处理" }).count(), 1, "shown once");
  await assertExactlyOnceInOrder(page, agent, conversationId);
  await context.close();
});
