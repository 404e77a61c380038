// The taxpayer's conversation: one reactive store shared by the chat screens.
//
// Delivery: messages are kept by `seq` (a Map), so a replayed message never shows twice, and
// the stream is always (re)opened with `after_seq` = the highest seq held, so nothing said
// while the network was down is missed. Sends carry a client id and are retried with the
// same id, so a retry after a lost response is stored once.
import { reactive, computed } from "vue";
import { ConnectError, Code } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { conversation as api, clientId } from "../api/client";
import { failure, type ApiFailure } from "../api/errors";
import {
  type Conversation,
  type Message,
  type MessageContent,
  MessageContentSchema,
  ConversationMode,
  type MediaSession,
} from "../gen/zhengna/session/v1/conversation_pb.js";

export type Link = "idle" | "connecting" | "live" | "reconnecting";

export interface Pending {
  clientMsgId: string;
  content: MessageContent;
  text: string;
  failed: ApiFailure | null;
}

export const state = reactive({
  conversation: null as Conversation | null,
  bySeq: new Map<bigint, Message>(),
  /** Highest seq held (all of 1..lastSeq are present once caught up). */
  lastSeq: 0n,
  /** Lowest seq loaded (for 加载历史 / load more). */
  firstSeq: 0n,
  caughtUp: false,
  link: "idle" as Link,
  pending: [] as Pending[],
  media: null as MediaSession | null,
  /** Hides messages up to this seq in the current view (清屏); history still has them. */
  clearedThrough: 0n,
  error: null as ApiFailure | null,
});

export const messages = computed(() =>
  [...state.bySeq.values()].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0)),
);

export const visibleMessages = computed(() => messages.value.filter((m) => m.seq > state.clearedThrough));

export const mode = computed(() => state.conversation?.mode ?? ConversationMode.UNSPECIFIED);

const listeners = new Set<(m: Message) => void>();
/** Called once per newly held message (live or replayed), in seq order. */
export function onMessage(f: (m: Message) => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

function hold(m: Message) {
  if (state.bySeq.has(m.seq)) return;
  state.bySeq.set(m.seq, m);
  if (m.seq > state.lastSeq) state.lastSeq = m.seq;
  if (state.firstSeq === 0n || m.seq < state.firstSeq) state.firstSeq = m.seq;
  state.pending = state.pending.filter((p) => p.clientMsgId !== m.clientMsgId || !m.clientMsgId);
  for (const f of listeners) f(m);
}

let abort: AbortController | null = null;
let generation = 0;

/** Starts (or resumes) the taxpayer's conversation and keeps its stream open. */
export async function open(channel = "web"): Promise<void> {
  if (state.conversation && state.link !== "idle") return;
  state.link = "connecting";
  try {
    const res = await api.startConversation({ channel });
    const conv = res.conversation!;
    if (state.conversation?.id !== conv.id) {
      state.bySeq = new Map();
      state.lastSeq = 0n;
      state.firstSeq = 0n;
    }
    state.conversation = conv;
    state.clearedThrough = conv.clearedThroughSeq;
    state.error = null;
    // Start from what the view shows: after a clear, only what follows it.
    if (state.lastSeq === 0n && conv.clearedThroughSeq > 0n) {
      state.lastSeq = conv.clearedThroughSeq;
      state.firstSeq = conv.clearedThroughSeq + 1n;
    }
    void stream(++generation);
  } catch (e) {
    state.error = failure(e);
    state.link = "idle";
    throw e;
  }
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

async function stream(gen: number) {
  let backoff = 500;
  while (gen === generation && state.conversation) {
    abort = new AbortController();
    state.link = state.caughtUp ? "reconnecting" : "connecting";
    try {
      const it = api.subscribe(
        { conversationId: state.conversation.id, afterSeq: state.lastSeq },
        { signal: abort.signal },
      );
      for await (const ev of it) {
        if (gen !== generation) return;
        backoff = 500;
        switch (ev.event.case) {
          case "message":
            hold(ev.event.value);
            break;
          case "conversationUpdated":
            state.conversation = ev.event.value;
            break;
          case "caughtUp":
            state.caughtUp = true;
            state.link = "live";
            break;
          case "mediaSession":
            state.media = ev.event.value;
            break;
          default:
            break;
        }
      }
    } catch (e) {
      if (gen !== generation) return;
      const code = ConnectError.from(e).code;
      if (code === Code.PermissionDenied || code === Code.NotFound) {
        state.error = failure(e);
        state.link = "idle";
        return;
      }
    }
    if (gen !== generation) return;
    // Ended conversations stop streaming; anything else reconnects with backoff.
    if (state.conversation?.mode === ConversationMode.ENDED) {
      state.link = "idle";
      return;
    }
    state.link = "reconnecting";
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 8000);
  }
}

/** Drops the stream now (it reconnects by itself); used when the browser comes back online. */
export function reconnect() {
  abort?.abort();
}

/** Closes the stream for good (leaving the page, or switching user). */
export function close() {
  generation++;
  abort?.abort();
  state.link = "idle";
}

window.addEventListener("online", () => reconnect());

/** Sends content; retried with the same client id until stored. */
export async function send(content: MessageContent, text = ""): Promise<ApiFailure | null> {
  if (!state.conversation) await open();
  const p: Pending = { clientMsgId: clientId(), content, text, failed: null };
  state.pending.push(p);
  return deliver(p);
}

export async function retry(p: Pending): Promise<ApiFailure | null> {
  p.failed = null;
  return deliver(p);
}

async function deliver(p: Pending): Promise<ApiFailure | null> {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await api.sendMessage({
        conversationId: state.conversation!.id,
        clientMsgId: p.clientMsgId,
        content: p.content,
      });
      if (res.message) hold(res.message);
      state.pending = state.pending.filter((x) => x !== p);
      return null;
    } catch (e) {
      const f = failure(e);
      const transient = f.code === Code.Unavailable || f.code === Code.Unknown || f.code === Code.DeadlineExceeded;
      if (transient && attempt < 4) {
        await sleep(400 * 2 ** attempt);
        continue;
      }
      p.failed = f;
      const idx = state.pending.indexOf(p);
      if (idx >= 0) state.pending[idx] = { ...p };
      return f;
    }
  }
}

export function textContent(text: string): MessageContent {
  return create(MessageContentSchema, { body: { case: "text", value: { text } } });
}

/** Loads up to `n` earlier messages (加载历史 / load more); returns how many arrived. */
export async function loadEarlier(n = 20): Promise<number> {
  if (!state.conversation) return 0;
  const before = state.firstSeq > 0n ? state.firstSeq : state.lastSeq + 1n;
  if (before <= 1n) return 0;
  const res = await api.listHistory({
    conversationId: state.conversation.id,
    beforeSeq: before,
    page: { pageSize: n, pageToken: "" },
  });
  let added = 0;
  for (const m of res.messages) {
    if (!state.bySeq.has(m.seq)) {
      state.bySeq.set(m.seq, m);
      added++;
      if (state.firstSeq === 0n || m.seq < state.firstSeq) state.firstSeq = m.seq;
    }
  }
  return added;
}

/** 清屏: hides everything said so far from this view (the server remembers the mark). */
export async function clearScreen(): Promise<void> {
  if (!state.conversation) return;
  const res = await api.clearScreen({ conversationId: state.conversation.id });
  state.clearedThrough = res.clearedThroughSeq;
}

/** 加载历史 after a clear: shows the hidden messages again in this view. */
export async function restoreHistory(): Promise<number> {
  state.clearedThrough = 0n;
  let total = 0;
  for (let i = 0; i < 10; i++) {
    const n = await loadEarlier(50);
    total += n;
    if (n === 0) break;
  }
  return total;
}
