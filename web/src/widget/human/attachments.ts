// Short-lived download links of attachments (GetAttachment), cached until shortly before
// they expire.
import { conversation } from "../../api/client";

interface Link {
  url: string;
  inline: boolean;
  expires: number;
}

const cache = new Map<string, Link>();

/** A fresh link for attachment `id` (`fresh` skips the cache, e.g. after a failed load). */
export async function attachmentLink(id: string, fresh = false): Promise<Link> {
  const hit = cache.get(id);
  if (hit && !fresh && hit.expires - Date.now() > 20_000) return hit;
  const r = await conversation.getAttachment({ attachmentId: id });
  const expires = r.urlExpiresAt ? Number(r.urlExpiresAt.seconds) * 1000 : Date.now() + 60_000;
  const link = { url: r.downloadUrl, inline: r.inlineAllowed, expires };
  cache.set(id, link);
  return link;
}

/** Downloads attachment `id` as `name` through a fresh link. */
export async function download(id: string, name: string): Promise<void> {
  const { url } = await attachmentLink(id, true);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
}
