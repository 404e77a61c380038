// Helpers for the human-service browser tests: an online agent acting through the API, a
// served conversation, real PNG bytes, and reading what the chat shows.
import { deflateSync } from "node:zlib";
import { randomUUID } from "node:crypto";
import { api, devToken, uniqueSub, eventually, BASE } from "./lib.mjs";

export const ONLINE = 1; // zhengna.queue.v1.AgentPresence.AGENT_PRESENCE_ONLINE
export const CHAT_IMAGE = 1; // UploadPurpose
export const CHAT_FILE = 2;

/**
 * A fresh agent of the Jinan Lixia office (the office of the taxpayer-jinan demo login),
 * set ONLINE. Setting presence before the taxpayer asks for a human matters: requests are
 * routed to the nearest office that has agents, and a fresh platform has none yet.
 */
export async function onlineAgent() {
  const token = await devToken("agent-jinan", uniqueSub("A"));
  const desk = api("zhengna.queue.v1.AgentDeskService", token);
  const chat = api("zhengna.session.v1.AgentConversationService", token);
  await desk.setPresence({ presence: ONLINE, capacity: 5 });
  return { token, desk, chat };
}

/** Text content for API sends. */
export function text(t) {
  return { body: { case: "text", value: { text: t } } };
}

/** Sends an agent text; returns the stored message. */
export async function agentSays(agent, conversationId, t) {
  const r = await agent.chat.sendAgentMessage({ conversationId, clientMsgId: randomUUID(), content: text(t) });
  if (!r.message) throw new Error(`agent message not delivered: ${r.notice}`);
  return r.message;
}

/** Clicks 人工服务 and waits for the queue card; returns its entry id. */
export async function askForHuman(page) {
  await page.getByTestId("transfer-human").click();
  const card = page.getByTestId("queue-card");
  await card.waitFor();
  return eventually(async () => (await card.getAttribute("data-entry-id")) || null, 20_000, "queue entry id");
}

/** The agent calls (claims) this taxpayer's entry; returns the conversation id. */
export async function claim(agent, entryId) {
  const r = await agent.desk.claimEntry({ entryId });
  return r.assignment.entry.conversationId;
}

/** 转人工 in the page, then claimed by `agent`; waits for the agent banner. */
export async function servedChat(page, agent) {
  const entryId = await askForHuman(page);
  const conversationId = await claim(agent, entryId);
  await page.getByTestId("agent-banner").waitFor();
  return { entryId, conversationId };
}

/**
 * The agent's view of the transcript (SubscribeConversation from seq 0), read until
 * `done(messages)` returns something truthy, which is returned.
 */
export async function agentSees(agent, conversationId, done, ms = 20_000) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ms);
  const seen = [];
  try {
    for await (const ev of agent.chat.subscribeConversation({ conversationId, afterSeq: 0n }, { signal: ctl.signal })) {
      if (ev.event.case !== "message") continue;
      seen.push(ev.event.value);
      const r = done(seen);
      if (r) return r;
    }
  } catch (e) {
    if (!ctl.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
  throw new Error(`the agent's stream did not show what was expected (${seen.length} messages seen)`);
}

/** The whole transcript as the agent sees it: the agent writes `marker`, then reads up to it. */
export async function transcript(agent, conversationId, marker = "（以上为本次会话记录）") {
  const m = await agentSays(agent, conversationId, marker);
  return agentSees(agent, conversationId, (ms) => (ms.some((x) => x.seq === m.seq) ? ms : null));
}

/** data-seq of every message shown, in DOM order. */
export async function shownSeqs(page) {
  return page.$$eval("[data-testid=message]", (els) => els.map((e) => Number(e.getAttribute("data-seq"))));
}

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A real RGB PNG of `w`×`h` pixels: a tax-red square with a white diagonal band. */
export function makePng(w = 64, h = 48) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0; // filter: none
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      const band = Math.abs(x - y) < 6;
      raw[o] = band ? 255 : 199;
      raw[o + 1] = band ? 255 : 0;
      raw[o + 2] = band ? 255 : 11;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** A small, valid-looking PDF. */
export function makePdf(size = 2048) {
  const b = Buffer.alloc(size, 0x20);
  Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "latin1").copy(b);
  return b;
}

/** The agent uploads and sends a file (CreateAgentUpload → PUT → CompleteAgentUpload). */
export async function agentSendsFile(agent, conversationId, fileName, bytes, purpose = CHAT_FILE) {
  const created = await agent.chat.createAgentUpload({
    clientRequestId: randomUUID(),
    purpose,
    fileName,
    contentType: "",
    sizeBytes: BigInt(bytes.length),
    conversationId,
  });
  const res = await fetch(new URL(created.uploadUrl, BASE), {
    method: created.method || "PUT",
    headers: created.headers,
    body: bytes,
  });
  if (!res.ok) throw new Error(`agent upload PUT ${res.status}: ${await res.text()}`);
  const done = await agent.chat.completeAgentUpload({ uploadId: created.uploadId });
  const content =
    purpose === CHAT_IMAGE
      ? { body: { case: "image", value: { attachment: { id: done.attachment.id } } } }
      : { body: { case: "file", value: { attachment: { id: done.attachment.id } } } };
  const r = await agent.chat.sendAgentMessage({ conversationId, clientMsgId: randomUUID(), content });
  return r.message;
}
