// 有效性反馈 state per bot reply (AskResponse.reply_id). The server refuses a second verdict,
// so what was given is also remembered in this browser to show the buttons as used after a
// reload.
import { reactive } from "vue";
import { Code } from "@connectrpc/connect";
import { answer } from "../../api/client";
import { failure, violationFor } from "../../api/errors";
import { FeedbackReason, FeedbackVerdict } from "../../gen/zhengna/answer/v1/answer_pb.js";

export interface ReplyFeedback {
  verdict: FeedbackVerdict;
  reasonGiven: boolean;
  /** Show the 意见反馈 panel (答非所问/答案错误/其他). */
  showReason: boolean;
  /** The server's prompt (系统推送提示语). */
  prompt: string;
  /** A refusal or error to show. */
  error: string;
  /** Per-field problem in the reason form. */
  commentError: string;
  suggestTransfer: boolean;
  busy: boolean;
}

const KEY = "zhengna.feedback";
const KEEP = 300;

function remembered(): Record<string, string> {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? "{}") as Record<string, string>;
  } catch {
    return {};
  }
}

function remember(replyId: string, value: string) {
  const all = remembered();
  delete all[replyId];
  all[replyId] = value;
  const keys = Object.keys(all);
  for (const k of keys.slice(0, Math.max(0, keys.length - KEEP))) delete all[k];
  try {
    localStorage.setItem(KEY, JSON.stringify(all));
  } catch {
    // Storage full or disabled: the server still refuses a second verdict.
  }
}

const states = reactive(new Map<string, ReplyFeedback>());

export function feedbackFor(replyId: string): ReplyFeedback {
  let s = states.get(replyId);
  if (!s) {
    const r = remembered()[replyId] ?? "";
    states.set(replyId, {
      verdict:
        r === "useful" ? FeedbackVerdict.USEFUL : r.startsWith("useless") ? FeedbackVerdict.USELESS : FeedbackVerdict.UNSPECIFIED,
      reasonGiven: r === "useless+reason" || r === "done",
      showReason: r === "useless",
      prompt: "",
      error: "",
      commentError: "",
      suggestTransfer: false,
      busy: false,
    });
    if (r === "done") states.get(replyId)!.verdict = FeedbackVerdict.USELESS;
    s = states.get(replyId)!;
  }
  return s;
}

interface Target {
  replyId: string;
  conversationId: string;
  messageId: string;
}

/** 有用 / 无用. */
export async function giveVerdict(t: Target, verdict: FeedbackVerdict) {
  const s = feedbackFor(t.replyId);
  if (s.busy || s.verdict !== FeedbackVerdict.UNSPECIFIED) return;
  s.busy = true;
  s.error = "";
  try {
    const res = await answer.submitFeedback({ ...t, verdict });
    s.verdict = verdict;
    s.prompt = res.prompt;
    s.showReason = res.showReasonForm;
    s.reasonGiven = verdict === FeedbackVerdict.USELESS && !res.showReasonForm;
    s.suggestTransfer = res.suggestTransfer;
    remember(t.replyId, verdict === FeedbackVerdict.USEFUL ? "useful" : res.showReasonForm ? "useless" : "useless+reason");
  } catch (e) {
    const f = failure(e);
    s.error = f.message;
    // Already judged (e.g. in another window): the buttons are used up.
    if (f.code === Code.FailedPrecondition || f.code === Code.AlreadyExists) {
      s.verdict = verdict;
      s.reasonGiven = true;
      s.showReason = false;
      remember(t.replyId, "done");
    }
  } finally {
    s.busy = false;
  }
}

/** The reason for 无用 (the second step), once. */
export async function giveReason(t: Target, reason: FeedbackReason, comment: string) {
  const s = feedbackFor(t.replyId);
  if (s.busy || s.reasonGiven) return;
  s.busy = true;
  s.error = "";
  s.commentError = "";
  try {
    const res = await answer.submitFeedback({ ...t, verdict: FeedbackVerdict.USELESS, reason, comment: comment.trim() });
    s.reasonGiven = true;
    s.showReason = false;
    s.prompt = res.prompt;
    s.suggestTransfer = s.suggestTransfer || res.suggestTransfer;
    remember(t.replyId, "useless+reason");
  } catch (e) {
    const f = failure(e);
    s.commentError = violationFor(f, "comment");
    s.error = s.commentError ? "" : f.message;
    if (f.code === Code.FailedPrecondition || f.code === Code.AlreadyExists) {
      s.reasonGiven = true;
      s.showReason = false;
      remember(t.replyId, "done");
    }
  } finally {
    s.busy = false;
  }
}
