// Which answered items are in the taxpayer's favourites (我的收藏), for the 收藏 star on bot
// replies. Lookups from many replies are batched into one CheckFavourites call. A toggle here
// announces itself with the "zhengna:favourites-changed" window event (and on the
// "zhengna-favourites" BroadcastChannel for other tabs), as panels/favourites.ts expects;
// changes announced by others (the panel, the personal centre) re-check the stars shown.
import { reactive } from "vue";
import { answer } from "../../api/client";
import { failure, type ApiFailure } from "../../api/errors";

export const favourites = reactive({
  /** Items known to be favourites. */
  ids: new Set<string>(),
  /** Items whose state is known (checked or toggled here). */
  known: new Set<string>(),
  busy: new Set<string>(),
});

const CHANGED = "zhengna:favourites-changed";
const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("zhengna-favourites") : null;
let announcing = false;

function announce() {
  announcing = true;
  try {
    window.dispatchEvent(new Event(CHANGED));
  } finally {
    announcing = false;
  }
  channel?.postMessage("changed");
}

/** Someone else changed the favourites: check every star again. */
function recheck() {
  if (announcing) return;
  const ids = [...favourites.known];
  favourites.known.clear();
  for (const id of ids) checkFavourite(id);
}
window.addEventListener(CHANGED, recheck);
channel?.addEventListener("message", recheck);

let queued = new Set<string>();
let timer: ReturnType<typeof setTimeout> | null = null;

/** Asks (batched) whether `itemId` is a favourite, unless already known. */
export function checkFavourite(itemId: string) {
  if (!itemId || favourites.known.has(itemId)) return;
  queued.add(itemId);
  if (timer) return;
  timer = setTimeout(async () => {
    timer = null;
    const ids = [...queued];
    queued = new Set();
    for (let i = 0; i < ids.length; i += 50) {
      const chunk = ids.slice(i, i + 50);
      try {
        const res = await answer.checkFavourites({ itemIds: chunk });
        for (const id of chunk) {
          favourites.known.add(id);
          if (res.favouriteItemIds.includes(id)) favourites.ids.add(id);
          else favourites.ids.delete(id);
        }
      } catch {
        // The star just stays unfilled; clicking it still works.
      }
    }
  }, 60);
}

/** Adds or removes a favourite; returns the failure to show, if any. */
export async function toggleFavourite(itemId: string, replyId: string): Promise<ApiFailure | null> {
  if (favourites.busy.has(itemId)) return null;
  favourites.busy.add(itemId);
  const was = favourites.ids.has(itemId);
  try {
    if (was) {
      await answer.removeFavourite({ itemId });
      favourites.ids.delete(itemId);
    } else {
      await answer.addFavourite({ itemId, replyId });
      favourites.ids.add(itemId);
    }
    favourites.known.add(itemId);
    announce();
    return null;
  } catch (e) {
    return failure(e);
  } finally {
    favourites.busy.delete(itemId);
  }
}
