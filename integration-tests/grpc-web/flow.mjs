// The first flow over grpc-web, as a browser would speak it: start a conversation, send a
// catalog question, read seq 1 and 2 from Subscribe, then resume with after_seq=1 and get
// only seq 2. Types come from the checked-in descriptor set, so no codegen is needed here.
//
// Env: GATEWAY_URL, TOKEN, DESCRIPTOR (path to descriptor.bin), QUESTION, HTTP_VERSION (1.1|2).
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";

const { GATEWAY_URL, TOKEN, DESCRIPTOR, QUESTION } = process.env;
let step = "start";
const progress = (s) => { step = s; process.stderr.write(`[flow] ${s}\n`); };
// Fail fast instead of hanging the test run.
setTimeout(() => { console.error(`[flow] timed out during: ${step}`); process.exit(3); }, 30_000).unref();
const httpVersion = process.env.HTTP_VERSION ?? "1.1";
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR)));
const service = registry.getService("zhengna.session.v1.ConversationService");
if (!service) throw new Error("ConversationService not in descriptor set");
const client = createClient(service, createGrpcWebTransport({ baseUrl: GATEWAY_URL, httpVersion }));
const headers = { authorization: `Bearer ${TOKEN}` };

// Reads n messages from a Subscribe call, then cancels it.
async function take(request, n, quietMs) {
  const abort = new AbortController();
  const stream = client.subscribe(request, { headers, signal: abort.signal });
  const seen = [];
  const it = stream[Symbol.asyncIterator]();
  while (seen.length < n) {
    const { value, done } = await it.next();
    if (done) break;
    if (value.event.case === "message") seen.push(value.event.value);
  }
  // Anything else arriving within quietMs would be a duplicate or a stray message.
  let extra = null;
  if (quietMs > 0) {
    const timer = new Promise((resolve) => setTimeout(() => resolve("quiet"), quietMs));
    for (;;) {
      const r = await Promise.race([it.next(), timer]);
      if (r === "quiet" || r.done) break;
      if (r.value.event.case === "message") { extra = r.value.event.value; break; }
    }
  }
  abort.abort();
  return { seen, extra };
}

progress("startConversation");
const { conversation } = await client.startConversation({ channel: "etax" }, { headers });
progress("sendMessage");
await client.sendMessage(
  { conversationId: conversation.id, clientMsgId: "web-1", content: { body: { case: "text", value: { text: QUESTION } } } },
  { headers },
);

progress("subscribe after_seq=0");
const first = await take({ conversationId: conversation.id, afterSeq: 0n }, 2, 0);
progress("subscribe after_seq=1");
const resumed = await take({ conversationId: conversation.id, afterSeq: 1n }, 1, 1500);

progress("call without token");
let unauthenticated = null;
try {
  await client.startConversation({ channel: "etax" }, {});
} catch (e) {
  unauthenticated = e.code; // connect Code.Unauthenticated = 16
}

const reply = first.seen[1]?.content?.body;
console.log(JSON.stringify({
  first: first.seen.map((m) => Number(m.seq)),
  senders: first.seen.map((m) => m.sender),
  decision: reply?.case === "botReply" ? reply.value.reply?.decision : null,
  catalogId: reply?.case === "botReply" ? reply.value.reply?.answer?.catalogId : null,
  resumed: resumed.seen.map((m) => Number(m.seq)),
  extraAfterResume: resumed.extra ? Number(resumed.extra.seq) : null,
  unauthenticated,
}));
// Idle keep-alive sockets would hold the process open.
process.exit(0);
