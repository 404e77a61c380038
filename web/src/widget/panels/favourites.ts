// The first favourites (我的收藏) for the widget panel. Whoever adds or removes a favourite
// (the 收藏 star on a bot reply, the personal centre) dispatches
// `window.dispatchEvent(new Event("zhengna:favourites-changed"))`; the panel reloads then,
// when another tab of the widget changes them, and whenever the window regains focus.
import { reactive } from "vue";
import { answer } from "../../api/client";
import { failure } from "../../api/errors";
import type { Favourite } from "../../gen/zhengna/answer/v1/answer_pb.js";

export const FAVOURITES_CHANGED = "zhengna:favourites-changed";

export const favState = reactive({
  items: [] as Favourite[],
  total: 0,
  loading: false,
  error: "",
});

// Changes made in another tab (the personal centre) arrive through this channel.
const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("zhengna-favourites") : null;

let inflight: Promise<void> | null = null;

export function reloadFavourites(size = 5): Promise<void> {
  if (inflight) return inflight;
  favState.loading = true;
  inflight = (async () => {
    try {
      const res = await answer.listFavourites({ page: { pageSize: size } });
      favState.items = res.favourites;
      favState.total = res.page && res.page.totalSize >= 0 ? res.page.totalSize : res.favourites.length;
      favState.error = "";
    } catch (e) {
      favState.error = failure(e).message;
    } finally {
      favState.loading = false;
      inflight = null;
    }
  })();
  return inflight;
}

export async function removeFavourite(itemId: string): Promise<string> {
  try {
    await answer.removeFavourite({ itemId });
    window.dispatchEvent(new Event(FAVOURITES_CHANGED));
    channel?.postMessage("changed");
    return "";
  } catch (e) {
    return failure(e).message;
  }
}

let listening = 0;
const onChange = () => void reloadFavourites();
const onVisible = () => {
  if (document.visibilityState === "visible") void reloadFavourites();
};

/** Keeps favState fresh while at least one panel is mounted; returns the stop function. */
export function useFavourites(): () => void {
  listening++;
  if (listening === 1) {
    window.addEventListener(FAVOURITES_CHANGED, onChange);
    window.addEventListener("focus", onChange);
    if (channel) channel.onmessage = onChange;
    document.addEventListener("visibilitychange", onVisible);
  }
  void reloadFavourites();
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    listening--;
    if (listening === 0) {
      window.removeEventListener(FAVOURITES_CHANGED, onChange);
      window.removeEventListener("focus", onChange);
      document.removeEventListener("visibilitychange", onVisible);
    }
  };
}
