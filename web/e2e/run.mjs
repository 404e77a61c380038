// Runs every browser test (e2e/*.test.mjs) one file at a time against E2E_BASE_URL.
import { readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith(".test.mjs"))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
  .map((f) => join(here, f));
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", "--test-reporter=spec", "--test-timeout=180000", ...files], {
  stdio: "inherit",
});
process.exit(r.status ?? 1);
