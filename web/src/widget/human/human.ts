// Human service state shared by the human screens: the queue entry and its live position
// (QueueService.WatchQueuePosition), 转人工 (EnqueueForHuman, also on the window event
// 'zhengna:transfer'), 取消排队, 结束会话 and the out-of-hours offer (留言 / 预约).
import { reactive, watch } from "vue";
import { Code, ConnectError } from "@connectrpc/connect";
import { queue as queueApi, conversation as convApi } from "../../api/client";
import { failure } from "../../api/errors";
import { state, open, patchConversation, messages } from "../conversation";
import {
  ConversationMode,
  SenderRole,
} from "../../gen/zhengna/session/v1/conversation_pb.js";
import {
  EnqueueOutcome,
  QueueEntryState,
  QueueTrigger,
  type QueuePosition,
} from "../../gen/zhengna/queue/v1/queue_pb.js";

export { QueueTrigger };

/** The out-of-hours (or full queue) offer shown instead of queueing. */
export interface ClosedOffer {
  notice: string;
  hours: string;
  leaveMessage: boolean;
  appointment: boolean;
}

export const human = reactive({
  /** The watched queue entry. */
  entryId: "",
  entryState: QueueEntryState.UNSPECIFIED,
  /** 1-based position; 0 when not waiting. */
  position: 0,
  /** 当前等候人数 (including this taxpayer). */
  waitingCount: 0,
  /** Estimated wait in seconds; null when unknown. */
  estimatedWaitSecs: null as number | null,
  notice: "",
  /** Position updates are flowing (false while (re)connecting). */
  live: false,
  /** An enqueue / cancel / end call is in flight. */
  busy: false,
  /** Last failure to show (Chinese). */
  error: "",
  /** Set when 转人工 was refused for now (out of hours / full): offer 留言 and 预约. */
  closed: null as ClosedOffer | null,
});

/** How a 'zhengna:transfer' event may name its trigger. */
const TRIGGER_NAMES: Record<string, QueueTrigger> = {
  button: QueueTrigger.BUTTON,
  intent: QueueTrigger.INTENT,
  no_answer: QueueTrigger.NO_ANSWER,
  unresolved_rounds: QueueTrigger.UNRESOLVED_ROUNDS,
  useless_feedback: QueueTrigger.USELESS_FEEDBACK,
  emotion: QueueTrigger.EMOTION,
};

export function triggerOf(v: unknown): QueueTrigger {
  if (typeof v === "number" && QueueTrigger[v] !== undefined && v !== 0) return v as QueueTrigger;
  if (typeof v === "string" && TRIGGER_NAMES[v.toLowerCase()]) return TRIGGER_NAMES[v.toLowerCase()];
  return QueueTrigger.BUTTON;
}

/** The taxpayer's latest questions, for the agent (≤ 300 characters). */
function questionSummary(): string {
  const texts: string[] = [];
  for (const m of [...messages.value].reverse()) {
    if (m.sender !== SenderRole.TAXPAYER) continue;
    const b = m.content?.body;
    const t =
      b?.case === "text" ? b.value.text : b?.case === "questionSelection" ? b.value.question : b?.case === "optionSelection" ? b.value.label : "";
    if (t.trim()) texts.unshift(t.trim());
    if (texts.length >= 3) break;
  }
  return texts.join("；").slice(0, 300);
}

function resetQueue() {
  stopWatch();
  human.entryId = "";
  human.entryState = QueueEntryState.UNSPECIFIED;
  human.position = 0;
  human.waitingCount = 0;
  human.estimatedWaitSecs = null;
  human.notice = "";
}

/** 转人工: queues the conversation (or shows the out-of-hours offer). */
export async function transfer(trigger: QueueTrigger = QueueTrigger.BUTTON, topicHint = ""): Promise<void> {
  if (human.busy) return;
  human.busy = true;
  human.error = "";
  try {
    if (!state.conversation || state.conversation.mode === ConversationMode.ENDED) await open();
    const conv = state.conversation;
    if (!conv) return;
    if (conv.mode === ConversationMode.HUMAN) return;
    const res = await queueApi.enqueueForHuman({
      conversationId: conv.id,
      trigger,
      topicHint: topicHint.slice(0, 50),
      questionSummary: questionSummary(),
    });
    if (res.outcome === EnqueueOutcome.CLOSED || res.outcome === EnqueueOutcome.QUEUE_FULL || !res.entry) {
      let hours = res.businessHours?.notice ?? "";
      if (!hours && res.outcome === EnqueueOutcome.CLOSED) hours = await hoursNotice();
      human.closed = {
        notice:
          res.notice ||
          (res.outcome === EnqueueOutcome.QUEUE_FULL
            ? "当前咨询人数较多，请稍后再试，您也可以留言或预约互动。"
            : "当前为非工作时间，您可以留言或预约互动。"),
        hours,
        leaveMessage: res.offerLeaveMessage || res.outcome === EnqueueOutcome.CLOSED,
        appointment: res.offerAppointment || res.outcome === EnqueueOutcome.CLOSED,
      };
      return;
    }
    const e = res.entry;
    human.entryId = e.id;
    human.entryState = e.state;
    human.position = e.position;
    human.notice = res.notice;
    // The QUEUED notice follows on the conversation stream; show the card at once.
    if (state.conversation?.id === conv.id && conv.mode === ConversationMode.BOT) {
      patchConversation({ mode: ConversationMode.QUEUED, queueEntryId: e.id, transferring: false });
    }
    startWatch(e.id);
  } catch (e) {
    human.error = failure(e).message;
  } finally {
    human.busy = false;
  }
}

/** Business hours text (GetBusinessHours), "" when unavailable. */
async function hoursNotice(): Promise<string> {
  try {
    const r = await queueApi.getBusinessHours({ officeCode: "" });
    return r.businessHours?.notice ?? "";
  } catch {
    return "";
  }
}

/** 取消排队. Returns the failure text, or "" on success. */
export async function cancelQueue(): Promise<string> {
  const id = human.entryId || state.conversation?.queueEntryId || "";
  if (!id) return "";
  human.busy = true;
  try {
    await queueApi.cancelQueueEntry({ entryId: id });
    resetQueue();
    if (state.conversation?.mode === ConversationMode.QUEUED) {
      patchConversation({ mode: ConversationMode.BOT, transferring: false });
    }
    return "";
  } catch (e) {
    return failure(e).message;
  } finally {
    human.busy = false;
  }
}

/** 结束会话. Returns the failure text (e.g. while 转接中), or "" on success. */
export async function endSession(): Promise<string> {
  const conv = state.conversation;
  if (!conv) return "";
  human.busy = true;
  try {
    const res = await convApi.endConversation({ conversationId: conv.id });
    if (res.conversation && state.conversation?.id === conv.id) {
      // The ended notice (and a rating request) follow on the stream.
      patchConversation({ mode: ConversationMode.ENDED, transferring: false, ratingRequested: res.conversation.ratingRequested });
    }
    resetQueue();
    return "";
  } catch (e) {
    return failure(e).message;
  } finally {
    human.busy = false;
  }
}

// ---- live position ------------------------------------------------------------------

let watchAbort: AbortController | null = null;
let watchGen = 0;

function apply(p: QueuePosition) {
  human.entryState = p.state;
  human.position = p.position;
  human.waitingCount = p.waitingCount;
  human.estimatedWaitSecs = p.estimatedWait ? Number(p.estimatedWait.seconds) : null;
  if (p.notice) human.notice = p.notice;
  if (p.state === QueueEntryState.ASSIGNED && p.agent?.displayName && state.conversation && !state.conversation.agent?.displayName) {
    patchConversation({ agent: p.agent });
  }
}

/** Waits `ms`, or less when aborted or when the browser comes back online. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((r) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      window.removeEventListener("online", done);
      r();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done);
    window.addEventListener("online", done);
  });
}

/** Follows an entry's position until it leaves the waiting line; reconnects on failures. */
export function startWatch(entryId: string) {
  if (human.entryId === entryId && watchAbort && !watchAbort.signal.aborted) return;
  stopWatch();
  human.entryId = entryId;
  const gen = ++watchGen;
  const ctl = new AbortController();
  watchAbort = ctl;
  void (async () => {
    let backoff = 1000;
    while (gen === watchGen) {
      let terminal = false;
      try {
        const it = queueApi.watchQueuePosition({ entryId }, { signal: ctl.signal });
        for await (const ev of it) {
          if (gen !== watchGen) return;
          human.live = true;
          backoff = 1000;
          if (ev.update.case === "position") {
            apply(ev.update.value);
            terminal = ev.update.value.state !== QueueEntryState.WAITING;
          }
        }
      } catch (e) {
        if (gen !== watchGen) return;
        const code = ConnectError.from(e).code;
        if (code === Code.NotFound || code === Code.PermissionDenied || code === Code.InvalidArgument) {
          human.live = false;
          return;
        }
      }
      human.live = false;
      // The server ends the stream once the entry is no longer waiting; the conversation's
      // notices take it from there.
      if (terminal || gen !== watchGen) return;
      await delay(backoff, ctl.signal);
      backoff = Math.min(backoff * 2, 8000);
    }
  })();
}

export function stopWatch() {
  watchGen++;
  watchAbort?.abort();
  watchAbort = null;
  human.live = false;
}

// Follow the conversation: watch the entry while queued, forget it otherwise.
watch(
  () => [state.conversation?.id, state.conversation?.mode, state.conversation?.queueEntryId, state.conversation?.transferring] as const,
  ([, mode, entryId, transferring]) => {
    if (mode === ConversationMode.QUEUED && entryId && !transferring) {
      if (human.entryId !== entryId) {
        human.position = 0;
        human.waitingCount = 0;
        human.estimatedWaitSecs = null;
      }
      startWatch(entryId);
    } else if (mode === ConversationMode.QUEUED && transferring) {
      stopWatch();
    } else {
      resetQueue();
    }
  },
  { immediate: true },
);

/** A 'zhengna:transfer' event's detail: `{ trigger?: QueueTrigger | "no_answer" | …, topicHint? }`. */
export interface TransferDetail {
  trigger?: QueueTrigger | string;
  topicHint?: string;
}

export function onTransferEvent(e: Event) {
  const d = ((e as CustomEvent).detail ?? {}) as TransferDetail;
  void transfer(triggerOf(d.trigger), typeof d.topicHint === "string" ? d.topicHint : "");
}
