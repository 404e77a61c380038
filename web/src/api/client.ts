// grpc-web clients for every taxpayer-facing service, through the gateway at this origin.
import { createClient, type Interceptor, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";
import { token } from "./auth";
import { AnswerService } from "../gen/zhengna/answer/v1/answer_pb.js";
import { SpeechService } from "../gen/zhengna/answer/v1/speech_pb.js";
import { ConversationService } from "../gen/zhengna/session/v1/conversation_pb.js";
import { QueueService } from "../gen/zhengna/queue/v1/queue_pb.js";
import { AppointmentService } from "../gen/zhengna/appointment/v1/appointment_pb.js";
import { InboxService, LeaveMessageService } from "../gen/zhengna/messaging/v1/messaging_pb.js";

const bearer: Interceptor = (next) => async (req) => {
  req.header.set("authorization", `Bearer ${await token()}`);
  return next(req);
};

export const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  interceptors: [bearer],
});

function client<T extends DescService>(svc: T): Client<T> {
  return createClient(svc, transport);
}

export const answer = client(AnswerService);
export const speech = client(SpeechService);
export const conversation = client(ConversationService);
export const queue = client(QueueService);
export const appointment = client(AppointmentService);
export const inbox = client(InboxService);
export const leave = client(LeaveMessageService);

/** A random id for idempotent sends (`client_msg_id`). */
export function clientId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
