// What the chat screens send on the taxpayer's behalf, and the events other areas react to.
//
// Window events dispatched here (the human-service and forms areas listen for them):
//   "zhengna:transfer"       转人工 clicked in a bot reply or after repeated 无用 feedback.
//                            detail: { trigger: "no_answer" | "intent" | "emotion" |
//                            "unresolved_rounds" | "useless_feedback" | "button", topicHint: string }
//                            (human/human.ts queues the taxpayer with that trigger).
//   "zhengna:leave-message"  留言 clicked in a bot reply. detail: { text: string }, the taxpayer's
//                            unanswered question, prefilled into the 留言 form (dialogs/).
import { toRaw } from "vue";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { MessageContentSchema } from "../../gen/zhengna/session/v1/conversation_pb.js";
import { QuestionSource } from "../../gen/zhengna/answer/v1/answer_pb.js";
import { send, textContent, state } from "../conversation";
import type { ApiFailure } from "../../api/errors";

/** Sends typed text (or a hot word) as a question. */
export function askText(text: string): Promise<ApiFailure | null> {
  const t = text.trim();
  return send(textContent(t), t);
}

/**
 * Asks a listed question (联想/猜你想问/热点/套餐/收藏) by its knowledge item, so the bot
 * answers that item directly. Should the session refuse the selection kind, the question is
 * sent as its text instead, so the taxpayer still gets an answer.
 */
export async function askItem(itemId: string, question: string, source: QuestionSource): Promise<ApiFailure | null> {
  if (!itemId) return askText(question);
  const content = create(MessageContentSchema, {
    body: { case: "questionSelection", value: { itemId, question, source } },
  });
  const f = await send(content, question);
  if (f && f.code === Code.InvalidArgument) {
    state.pending = state.pending.filter((p) => toRaw(p.content) !== content);
    return askText(question);
  }
  return f;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Answers a clarification (多轮互动) with one of its options. Should the session refuse the
 * selection kind, an option that names a knowledge item (the "您想咨询的是以下哪个问题" list,
 * whose option ids are item ids) is asked as that item instead.
 */
export async function chooseOption(nodeId: string, optionId: string, label: string): Promise<ApiFailure | null> {
  const content = create(MessageContentSchema, {
    body: { case: "optionSelection", value: { clarificationNodeId: nodeId, optionId, label } },
  });
  const f = await send(content, label);
  if (f && f.code === Code.InvalidArgument && UUID.test(optionId)) {
    state.pending = state.pending.filter((p) => toRaw(p.content) !== content);
    return askItem(optionId, label, QuestionSource.CLARIFICATION);
  }
  return f;
}

export type TransferTrigger = "no_answer" | "intent" | "emotion" | "unresolved_rounds" | "useless_feedback" | "button";

export function requestTransfer(trigger: TransferTrigger, topicHint = "") {
  window.dispatchEvent(new CustomEvent("zhengna:transfer", { detail: { trigger, topicHint } }));
}

export function requestLeaveMessage(text = "") {
  window.dispatchEvent(new CustomEvent("zhengna:leave-message", { detail: { text } }));
}
