// Messages from the widget frame to the embedding script on the host page (public/embed.js).
export type HostCommand = "maximise" | "restore" | "minimise";

export function post(cmd: HostCommand) {
  if (window.parent !== window) window.parent.postMessage({ type: `zhengna:${cmd}` }, location.origin);
}
