// Where the widget's bearer token comes from. The host page (e-tax bureau, e-invoice
// platform) hands the widget a token with `ZhengnaWidget.setToken(jwt)`, which reaches the
// widget frame by postMessage and is kept in localStorage for this origin. In a local run
// the gateway's development issuer mints tokens for the demo logins (/dev/token).
const TOKEN_KEY = "zhengna.token";
const DEV_USER_KEY = "zhengna.devUser";

interface Claims {
  exp?: number;
  sub?: string;
  name?: string;
  office_name?: string;
}

function decode(token: string): Claims | null {
  try {
    const part = token.split(".")[1];
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(decodeURIComponent(escape(json))) as Claims;
  } catch {
    return null;
  }
}

function fresh(token: string | null): token is string {
  if (!token) return false;
  const c = decode(token);
  return !!c && (!c.exp || c.exp * 1000 > Date.now() + 30_000);
}

export function setToken(token: string) {
  localStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  localStorage.removeItem(TOKEN_KEY);
}

export function setDevUser(id: string) {
  localStorage.setItem(DEV_USER_KEY, id);
  clearToken();
}

export function currentClaims(): Claims | null {
  const t = localStorage.getItem(TOKEN_KEY);
  return t ? decode(t) : null;
}

let pending: Promise<string> | null = null;

/** A valid token, fetching a development one when none was handed over. */
export async function token(): Promise<string> {
  const stored = localStorage.getItem(TOKEN_KEY);
  if (fresh(stored)) return stored;
  if (!pending) {
    pending = (async () => {
      const user = localStorage.getItem(DEV_USER_KEY) || "taxpayer-jinan";
      const res = await fetch(`/dev/token?user=${encodeURIComponent(user)}`);
      if (!res.ok) throw new Error("no token: the host page must call ZhengnaWidget.setToken()");
      const body = (await res.json()) as { token: string };
      setToken(body.token);
      return body.token;
    })().finally(() => {
      pending = null;
    });
  }
  return pending;
}

// Tokens handed over by the host page.
window.addEventListener("message", (ev) => {
  if (ev.origin !== location.origin) return;
  const data = ev.data as { type?: string; token?: string } | null;
  if (data?.type === "zhengna:token" && typeof data.token === "string") setToken(data.token);
});
