/*
 * zhengna widget loader. Any host page includes it with one tag:
 *
 *   <script src="https://<gateway>/embed.js" defer></script>
 *
 * It adds the floating 征纳互动 icon at the bottom right; a click opens the chat in a panel
 * (an iframe of widget.html from the same origin as this script). The panel can be
 * maximised, restored and minimised back to the icon. The host hands over the taxpayer's
 * token with `ZhengnaWidget.setToken(jwt)`; `ZhengnaWidget.open()` / `.close()` drive it
 * from script. Optional attributes: data-channel ("etax", the default, or "einvoice": which
 * platform the conversation comes from), data-user (a demo login, local runs only) and
 * data-open="true" (open at load).
 */
(function () {
  "use strict";
  if (window.ZhengnaWidget) return;
  var script = document.currentScript;
  var origin = new URL(script ? script.src : location.href).origin;
  var pendingToken = null;
  var frame = null;
  var panel = null;
  var icon = null;
  var state = "closed";

  var css =
    ".zn-fab{position:fixed;right:24px;bottom:24px;z-index:2147483000;width:64px;height:64px;border-radius:50%;" +
    "background:#c7000b;color:#fff;border:none;box-shadow:0 4px 14px rgba(0,0,0,.25);cursor:pointer;" +
    "font:600 13px/1.2 'PingFang SC','Microsoft YaHei',sans-serif;display:flex;flex-direction:column;align-items:center;justify-content:center}" +
    ".zn-fab:focus-visible{outline:3px solid #1d5fbf;outline-offset:3px}" +
    ".zn-fab svg{margin-bottom:2px}" +
    ".zn-panel{position:fixed;right:24px;bottom:24px;z-index:2147483001;width:420px;height:640px;max-height:calc(100vh - 48px);" +
    "max-width:calc(100vw - 24px);background:#fff;border-radius:10px;overflow:hidden;box-shadow:0 8px 32px rgba(0,0,0,.3);display:none}" +
    ".zn-panel.zn-open{display:block}" +
    ".zn-panel.zn-max{right:0;bottom:0;width:100vw;height:100vh;max-width:none;max-height:none;border-radius:0}" +
    ".zn-panel iframe{border:0;width:100%;height:100%;display:block}" +
    "@media (max-width:480px){.zn-panel{right:0;bottom:0;width:100vw;height:100vh;max-height:none;max-width:none;border-radius:0}}";

  function build() {
    var style = document.createElement("style");
    style.textContent = css;
    document.head.appendChild(style);
    icon = document.createElement("button");
    icon.type = "button";
    icon.className = "zn-fab";
    icon.setAttribute("aria-label", "打开征纳互动");
    icon.setAttribute("data-testid", "zhengna-fab");
    icon.innerHTML =
      '<svg aria-hidden="true" width="26" height="26" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">' +
      '<path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1.1-4.3A8 8 0 1 1 21 12z"/><path d="M8.5 11h.01M12 11h.01M15.5 11h.01"/></svg>' +
      "征纳互动";
    icon.addEventListener("click", open);
    panel = document.createElement("div");
    panel.className = "zn-panel";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", "征纳互动");
    panel.setAttribute("data-testid", "zhengna-panel");
    document.body.appendChild(icon);
    document.body.appendChild(panel);
  }

  function ensureFrame() {
    if (frame) return;
    frame = document.createElement("iframe");
    frame.title = "征纳互动";
    frame.setAttribute("allow", "microphone; camera; display-capture; clipboard-write");
    var channel = script && script.getAttribute("data-channel") === "einvoice" ? "einvoice" : "etax";
    frame.src = origin + "/widget.html?channel=" + channel + "#/";
    frame.addEventListener("load", function () {
      if (pendingToken) send({ type: "zhengna:token", token: pendingToken });
    });
    panel.appendChild(frame);
  }

  function send(msg) {
    if (frame && frame.contentWindow) frame.contentWindow.postMessage(msg, origin);
  }

  function open() {
    ensureFrame();
    panel.classList.add("zn-open");
    icon.style.display = "none";
    state = "open";
  }

  function close() {
    if (!panel) return;
    panel.classList.remove("zn-open", "zn-max");
    icon.style.display = "";
    icon.focus();
    state = "closed";
  }

  window.addEventListener("message", function (ev) {
    if (ev.origin !== origin || !ev.data || typeof ev.data.type !== "string") return;
    switch (ev.data.type) {
      case "zhengna:maximise":
        panel.classList.add("zn-max");
        state = "max";
        break;
      case "zhengna:restore":
        panel.classList.remove("zn-max");
        state = "open";
        break;
      case "zhengna:minimise":
        close();
        break;
    }
  });

  window.ZhengnaWidget = {
    open: open,
    close: close,
    state: function () {
      return state;
    },
    setToken: function (jwt) {
      pendingToken = jwt;
      try {
        if (location.origin === origin) localStorage.setItem("zhengna.token", jwt);
      } catch (e) {}
      send({ type: "zhengna:token", token: jwt });
    },
  };

  function start() {
    build();
    var user = script && script.getAttribute("data-user");
    if (user && location.origin === origin) {
      try {
        if (localStorage.getItem("zhengna.devUser") !== user) {
          localStorage.setItem("zhengna.devUser", user);
          localStorage.removeItem("zhengna.token");
        }
      } catch (e) {}
    }
    if (script && script.getAttribute("data-open") === "true") open();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
