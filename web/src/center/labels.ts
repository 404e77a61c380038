// Chinese labels for the enums shown in the personal centre and the widget panels.
import { LeaveMessageStatus, NotificationCategory, NotificationKind } from "../gen/zhengna/messaging/v1/messaging_pb.js";
import {
  AppointmentAction,
  ConfirmStatus,
  InteractionMethod,
  InteractionStatus,
} from "../gen/zhengna/appointment/v1/appointment_pb.js";

export type TagType = "primary" | "success" | "info" | "warning" | "danger";

export const LEAVE_STATUS: { value: LeaveMessageStatus; label: string; tag: TagType }[] = [
  { value: LeaveMessageStatus.PENDING, label: "待处理", tag: "warning" },
  { value: LeaveMessageStatus.PROCESSING, label: "处理中", tag: "primary" },
  { value: LeaveMessageStatus.REPLIED, label: "已回复", tag: "success" },
  { value: LeaveMessageStatus.CONVERTED, label: "已转工单", tag: "primary" },
  { value: LeaveMessageStatus.CLOSED, label: "已办结", tag: "info" },
];

export const METHODS: { value: InteractionMethod; label: string }[] = [
  { value: InteractionMethod.PHONE, label: "电话" },
  { value: InteractionMethod.ONLINE, label: "线上互动" },
];

export const CONFIRM_STATUS: { value: ConfirmStatus; label: string; tag: TagType }[] = [
  { value: ConfirmStatus.PENDING, label: "待确认", tag: "warning" },
  { value: ConfirmStatus.BOOKED, label: "预约成功", tag: "success" },
  { value: ConfirmStatus.INTERACTED, label: "互动成功", tag: "success" },
  { value: ConfirmStatus.CANCELLED, label: "取消预约", tag: "info" },
  { value: ConfirmStatus.MISSED, label: "失约", tag: "danger" },
  { value: ConfirmStatus.REJECTED, label: "已拒绝", tag: "info" },
  { value: ConfirmStatus.FAILED, label: "预约失败", tag: "danger" },
];

/** Confirm statuses that can occur for the taxpayer's own bookings (我的发起). */
export const MINE_CONFIRM = [
  ConfirmStatus.BOOKED,
  ConfirmStatus.INTERACTED,
  ConfirmStatus.CANCELLED,
  ConfirmStatus.MISSED,
];

export const INTERACTION_STATUS: { value: InteractionStatus; label: string; tag: TagType }[] = [
  { value: InteractionStatus.WAITING, label: "待互动", tag: "warning" },
  { value: InteractionStatus.IN_PROGRESS, label: "互动中", tag: "primary" },
  { value: InteractionStatus.COMPLETED, label: "已办结", tag: "success" },
  { value: InteractionStatus.FAILED, label: "互动失败", tag: "danger" },
];

export const ACTIONS: Record<number, string> = {
  [AppointmentAction.BOOKED]: "提交预约",
  [AppointmentAction.INVITED]: "税局发起邀请",
  [AppointmentAction.ACCEPTED]: "接受预约",
  [AppointmentAction.REJECTED]: "拒绝预约",
  [AppointmentAction.CANCELLED]: "取消预约",
  [AppointmentAction.STARTED]: "依约发起互动",
  [AppointmentAction.COMPLETED]: "互动办结",
  [AppointmentAction.MISSED]: "失约",
  [AppointmentAction.FAILED]: "预约失败",
};

export const CATEGORY: Record<number, string> = {
  [NotificationCategory.TODO]: "待办提醒",
  [NotificationCategory.NOTICE]: "消息提示",
};

export const KIND: Record<number, string> = {
  [NotificationKind.PRECISION_PUSH]: "精准推送",
  [NotificationKind.TICKET_RESULT]: "工单办理结果",
  [NotificationKind.LEAVE_MESSAGE_REPLY]: "留言回复",
  [NotificationKind.APPOINTMENT_BOOKED]: "预约成功",
  [NotificationKind.APPOINTMENT_MISSED]: "预约失约",
  [NotificationKind.APPOINTMENT_INVITED]: "税局邀请",
  [NotificationKind.APPOINTMENT_CANCELLED]: "预约取消",
  [NotificationKind.APPOINTMENT_REMINDER]: "预约提醒",
  [NotificationKind.APPOINTMENT_FAILED]: "预约失败",
  [NotificationKind.ANSWER_CHANGED]: "答案变更",
};

export function label<T>(list: { value: T; label: string }[], v: T): string {
  return list.find((x) => x.value === v)?.label ?? "—";
}

export function tagOf<T>(list: { value: T; tag: TagType }[], v: T): TagType {
  return list.find((x) => x.value === v)?.tag ?? "info";
}

/** The personal-centre route that shows a notification's source object, if any. */
export function sourceRoute(kind: NotificationKind, ref: string): string {
  if (!ref) return "";
  switch (kind) {
    case NotificationKind.LEAVE_MESSAGE_REPLY:
      return `/center/leave-messages/${ref}`;
    case NotificationKind.APPOINTMENT_BOOKED:
    case NotificationKind.APPOINTMENT_MISSED:
    case NotificationKind.APPOINTMENT_INVITED:
    case NotificationKind.APPOINTMENT_CANCELLED:
    case NotificationKind.APPOINTMENT_REMINDER:
    case NotificationKind.APPOINTMENT_FAILED:
      return `/center/appointments/${ref}`;
    default:
      return "";
  }
}
