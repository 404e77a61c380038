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
  SendDisposition,
  SenderRole,
  SystemNoticeKind,
  type MediaSession,
} from "../gen/zhengna/session/v1/conversation_pb.js";
import { AgentRefSchema } from "../gen/zhengna/common/v1/common_pb.js";

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
  follow(m);
  for (const f of listeners) f(m);
}

/** Replaces fields of the held conversation (a new object, so watchers see the change). */
export function patchConversation(changes: Partial<Conversation>) {
  if (state.conversation) state.conversation = { ...state.conversation, ...changes };
}

/**
 * Keeps `state.conversation` in step with the stream. The platform writes a system notice in
 * the same transaction as every mode change (queued, agent joined, transferring, queue left,
 * ended) and a rating request when one is posted, so replaying the messages in seq order
 * ends in the conversation's current state even when no `conversation_updated` event comes.
 */
function follow(m: Message) {
  const c = state.conversation;
  if (!c || m.conversationId !== c.id) return;
  // The server's own conversation (sent first on every subscription) already reflects
  // everything replayed; old notices must not take it back (a QUEUED notice replayed
  // after the line closed would otherwise show the queue again).
  if (replaying && serverState) return;
  const body = m.content?.body;
  if (body?.case === "systemNotice") {
    const n = body.value;
    switch (n.kind) {
      case SystemNoticeKind.QUEUED:
        patchConversation({ mode: ConversationMode.QUEUED, transferring: false, queueEntryId: n.refId || c.queueEntryId });
        break;
      case SystemNoticeKind.QUEUE_LEFT:
      case SystemNoticeKind.OUT_OF_HOURS:
        patchConversation({ mode: ConversationMode.BOT, transferring: false });
        break;
      case SystemNoticeKind.AGENT_JOINED: {
        const name = /税务人员\s*(.+?)(?:已接入|，|,|$)/.exec(n.text)?.[1]?.trim() ?? "";
        patchConversation({
          mode: ConversationMode.HUMAN,
          transferring: false,
          queueEntryId: n.refId || c.queueEntryId,
          agent: create(AgentRefSchema, { displayName: name || c.agent?.displayName || "" }),
        });
        break;
      }
      case SystemNoticeKind.TRANSFERRING:
        patchConversation({ mode: ConversationMode.QUEUED, transferring: true });
        break;
      case SystemNoticeKind.CONVERSATION_ENDED:
        patchConversation({ mode: ConversationMode.ENDED, transferring: false });
        break;
      default:
        break;
    }
  } else if (body?.case === "ratingRequest") {
    patchConversation({ ratingRequested: true });
  } else if (m.sender === SenderRole.AGENT && m.senderName && !c.agent?.displayName) {
    patchConversation({ agent: create(AgentRefSchema, { id: m.senderId, displayName: m.senderName }) });
  }
}

let abort: AbortController | null = null;
let generation = 0;
/** Between opening a subscription and its CaughtUp: messages are replayed history. */
let replaying = false;
/** The current subscription has sent the server's conversation. */
let serverState = false;

/** How many of the latest messages a (re)opened chat shows; 加载更多 pages further back. */
const INITIAL_WINDOW = 50n;

/** Host platform of the widget: `?channel=einvoice` on the widget URL, else "etax". */
function defaultChannel(): string {
  return new URLSearchParams(location.search).get("channel") === "einvoice" ? "einvoice" : "etax";
}

/** Starts (or resumes) the taxpayer's conversation and keeps its stream open. After an
 * ended conversation this starts a new one. */
export function open(channel = defaultChannel()): Promise<void> {
  // One start at a time: a send (or click) while the chat is still opening waits for the
  // same start instead of starting a second conversation.
  if (!opening) opening = start(channel).finally(() => (opening = null));
  return opening;
}
let opening: Promise<void> | null = null;

async function start(channel: string): Promise<void> {
  if (state.conversation && state.link !== "idle" && state.conversation.mode !== ConversationMode.ENDED) return;
  state.link = "connecting";
  try {
    const res = await api.startConversation({ channel });
    const conv = res.conversation!;
    if (state.conversation?.id !== conv.id) {
      state.bySeq = new Map();
      state.lastSeq = 0n;
      state.firstSeq = 0n;
      state.caughtUp = false;
      state.media = null;
    }
    state.conversation = conv;
    state.clearedThrough = conv.clearedThroughSeq;
    state.error = null;
    // Start from what the view shows: after a clear, only what follows it; of a long
    // conversation, only the latest messages (加载更多 loads the rest).
    if (state.lastSeq === 0n) {
      const recent = conv.lastSeq > INITIAL_WINDOW ? conv.lastSeq - INITIAL_WINDOW : 0n;
      const from = conv.clearedThroughSeq > recent ? conv.clearedThroughSeq : recent;
      if (from > 0n) {
        state.lastSeq = from;
        state.firstSeq = from + 1n;
      }
    }
    abort?.abort();
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

/** Resolves when the browser is back online, or after `ms` (whichever comes first). */
let wake: (() => void) | null = null;
function pause(ms: number): Promise<void> {
  return new Promise((r) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      if (wake === done) wake = null;
      r();
    }
    wake = done;
  });
}

/** No event (message or heartbeat, every 15-30 s) for this long means a dead connection. */
const SILENCE_MS = 45_000;

async function stream(gen: number) {
  let backoff = 500;
  while (gen === generation && state.conversation) {
    const ctl = new AbortController();
    abort = ctl;
    state.link = state.caughtUp ? "reconnecting" : "connecting";
    // Offline: wait for the network instead of failing attempts in a loop.
    if (!navigator.onLine) {
      state.link = "reconnecting";
      await pause(30_000);
      continue;
    }
    let watchdog = setTimeout(() => ctl.abort(), SILENCE_MS);
    const alive = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => ctl.abort(), SILENCE_MS);
      if (gen === generation && state.link !== "live") {
        state.link = "live";
        state.caughtUp = true;
      }
    };
    replaying = true;
    serverState = false;
    try {
      const it = api.subscribe(
        { conversationId: state.conversation.id, afterSeq: state.lastSeq },
        // The stream is open once its headers arrive (replay and live follow on it).
        { signal: ctl.signal, onHeader: alive },
      );
      for await (const ev of it) {
        if (gen !== generation) return;
        backoff = 500;
        alive();
        switch (ev.event.case) {
          case "message":
            hold(ev.event.value);
            break;
          case "conversationUpdated":
            state.conversation = ev.event.value;
            serverState = true;
            break;
          case "caughtUp":
            replaying = false;
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
        clearTimeout(watchdog);
        state.error = failure(e);
        state.link = "idle";
        return;
      }
    } finally {
      clearTimeout(watchdog);
    }
    if (gen !== generation) return;
    // Ended conversations stop streaming; anything else reconnects with backoff.
    if (state.conversation?.mode === ConversationMode.ENDED) {
      state.link = "idle";
      return;
    }
    state.link = "reconnecting";
    await pause(backoff);
    backoff = Math.min(backoff * 2, 8000);
  }
}

/** Drops the stream now and reopens it at once with after_seq (nothing is missed or shown
 * twice); used when the browser comes back online. */
export function reconnect() {
  abort?.abort();
  wake?.();
}

/** Closes the stream for good (leaving the page, or switching user). */
export function close() {
  generation++;
  abort?.abort();
  state.link = "idle";
}

window.addEventListener("online", () => reconnect());
// A connection that was open when the network went away may never report an error.
window.addEventListener("offline", () => {
  if (state.link === "live" || state.link === "connecting") state.link = "reconnecting";
  abort?.abort();
});

function whenOnline(): Promise<void> {
  if (navigator.onLine) return Promise.resolve();
  return new Promise((r) => window.addEventListener("online", () => r(), { once: true }));
}

/** Sends content; retried with the same client id until stored. After an ended
 * conversation a new one is started first. */
export async function send(content: MessageContent, text = ""): Promise<ApiFailure | null> {
  if (!state.conversation || state.conversation.mode === ConversationMode.ENDED) {
    try {
      await open();
    } catch (e) {
      return failure(e);
    }
  }
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
      if (!res.message && (res.disposition === SendDisposition.BLOCKED || res.disposition === SendDisposition.MUTED)) {
        return { code: Code.FailedPrecondition, message: res.notice || "该消息未能发送，请修改后再试", violations: [] };
      }
      return null;
    } catch (e) {
      const f = failure(e);
      const transient = f.code === Code.Unavailable || f.code === Code.Unknown || f.code === Code.DeadlineExceeded;
      // Offline: keep the message pending and send it (same client id) once back online.
      if (transient && !navigator.onLine) {
        await whenOnline();
        attempt = -1;
        continue;
      }
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
