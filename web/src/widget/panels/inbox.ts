// The taxpayer's inbox state shared by the 我的消息 panel, the compact badge button and the
// personal centre: unread counts kept live by WatchInbox (reconnecting with back-off, with a
// GetUnreadCount fallback), plus a change counter lists can watch to reload.
import { reactive } from "vue";
import { inbox } from "../../api/client";
import type { Notification } from "../../gen/zhengna/messaging/v1/messaging_pb.js";

export const inboxState = reactive({
  todo: 0,
  notice: 0,
  total: 0,
  /** Bumped whenever a notification was created or read, for lists to reload. */
  version: 0,
  /** Most recent notification created while watching. */
  latest: null as Notification | null,
  live: false,
});

function setCounts(c: { todoUnread: number; noticeUnread: number; totalUnread: number }) {
  const changed = c.totalUnread !== inboxState.total || c.todoUnread !== inboxState.todo;
  inboxState.todo = c.todoUnread;
  inboxState.notice = c.noticeUnread;
  inboxState.total = c.totalUnread;
  if (changed) inboxState.version++;
}

/** Fetches the counts once (after a change this client made, or without a stream). */
export async function refreshUnread(): Promise<void> {
  try {
    setCounts(await inbox.getUnreadCount({}));
  } catch {
    // Keep the last known counts; the watch loop retries.
  }
}

// WatchInbox pushes counts when notices are created; reads made in another tab (the
// personal centre) are shared through this channel, and counts are refetched on focus.
const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("zhengna-inbox") : null;

/** Called after this client read notifications, so badges drop at once (in every tab). */
export function noteRead(): void {
  inboxState.version++;
  void refreshUnread();
  channel?.postMessage("read");
}

function onOtherTab() {
  inboxState.version++;
  void refreshUnread();
}
function onVisible() {
  if (document.visibilityState === "visible") void refreshUnread();
}

let users = 0;
let abort: AbortController | null = null;

async function watchLoop(signal: AbortSignal) {
  let delay = 1000;
  while (!signal.aborted) {
    try {
      for await (const r of inbox.watchInbox({}, { signal })) {
        inboxState.live = true;
        delay = 1000;
        if (r.update.case === "unread") setCounts(r.update.value);
        else if (r.update.case === "created") {
          inboxState.latest = r.update.value;
          inboxState.version++;
        }
      }
    } catch {
      // Stream broke (network, gateway restart, unsupported): fall back to one fetch.
    }
    inboxState.live = false;
    if (signal.aborted) return;
    await refreshUnread();
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 30_000);
  }
}

/** Starts watching (reference-counted); returns the function that stops this user's watch. */
export function useInboxWatch(): () => void {
  users++;
  if (users === 1) {
    abort = new AbortController();
    if (channel) channel.onmessage = onOtherTab;
    document.addEventListener("visibilitychange", onVisible);
    void refreshUnread();
    void watchLoop(abort.signal);
  }
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    users--;
    if (users === 0) {
      abort?.abort();
      abort = null;
      if (channel) channel.onmessage = null;
      document.removeEventListener("visibilitychange", onVisible);
    }
  };
}
