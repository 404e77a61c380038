// Shared helpers for the browser tests: Debian's Chromium driven by playwright-core, a fresh
// taxpayer per test (the dev issuer's `sub` override), and grpc-web API calls for the other
// side (agents, desks) using the checked-in descriptor set.
//
// Env: E2E_BASE_URL (default http://127.0.0.1:8080, i.e. `make dev`), CHROMIUM (default
// /usr/bin/chromium), E2E_HEADFUL=1 to watch.
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

const here = dirname(fileURLToPath(import.meta.url));
export const BASE = process.env.E2E_BASE_URL ?? "http://127.0.0.1:8080";
export const SHOTS = join(here, "screenshots");
mkdirSync(SHOTS, { recursive: true });

/** Launches Chromium with the flags this machine's closed network needs. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: !process.env.E2E_HEADFUL,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

/** A unique subject, so each test acts as its own taxpayer (or agent). */
export function uniqueSub(prefix = "E2E") {
  return `${prefix}${Date.now().toString(36).toUpperCase()}${randomBytes(3).toString("hex").toUpperCase()}`;
}

/** A token from the gateway's development issuer for demo login `user`, optionally as `sub`. */
export async function devToken(user, sub) {
  const url = new URL("/dev/token", BASE);
  url.searchParams.set("user", user);
  if (sub) url.searchParams.set("sub", sub);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`/dev/token ${user}: ${res.status} ${await res.text()}`);
  return (await res.json()).token;
}

/**
 * A browser context signed in as a fresh taxpayer (demo login `user`, unique sub).
 * Returns { context, token, sub }. `viewport` defaults to a desktop window.
 */
export async function taxpayerContext(browser, { user = "taxpayer-jinan", sub = uniqueSub(), viewport } = {}) {
  const token = await devToken(user, sub);
  const context = await browser.newContext({
    baseURL: BASE,
    locale: "zh-CN",
    viewport: viewport ?? { width: 1280, height: 860 },
  });
  await context.addInitScript(
    ([t, u]) => {
      localStorage.setItem("zhengna.devUser", u);
      localStorage.setItem("zhengna.token", t);
    },
    [token, user],
  );
  return { context, token, sub };
}

/** Opens the chat widget page directly (what the host page's iframe shows). */
export async function openWidget(context) {
  const page = await context.newPage();
  await page.goto("/widget.html#/");
  await page.getByTestId("chat-input").waitFor();
  return page;
}

/** Saves a screenshot to web/e2e/screenshots/<name>.png. */
export async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

const registry = createFileRegistry(
  fromBinary(
    FileDescriptorSetSchema,
    readFileSync(join(here, "../../crates/proto/src/gen/descriptor.bin")),
  ),
);
const transport = createGrpcWebTransport({ baseUrl: BASE });

/** A grpc-web client for a fully-qualified service name, authenticated with `token`. */
export function api(serviceName, token) {
  const svc = registry.getService(serviceName);
  if (!svc) throw new Error(`no service ${serviceName} in the descriptor set`);
  const client = createClient(svc, transport);
  const headers = { authorization: `Bearer ${token}` };
  return new Proxy(client, {
    get(target, prop) {
      const f = target[prop];
      if (typeof f !== "function") return f;
      return (req = {}, opts = {}) => f(req, { ...opts, headers: { ...headers, ...(opts.headers ?? {}) } });
    },
  });
}

/** Polls `f` until it returns a truthy value (or throws after `ms`). */
export async function eventually(f, ms = 15_000, what = "condition") {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
