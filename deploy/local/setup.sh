#!/usr/bin/env bash
# Installs and starts what zhengna needs on a Debian/Ubuntu machine, skipping whatever is
# already there: PostgreSQL (from the distribution), a C toolchain for librdkafka, Node.js,
# the tansu Kafka-protocol broker (built once from crates.io, cached in ~/.zhengna-tools),
# and the Node packages of the tests and tools. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/../.."

TOOLS="${ZHENGNA_TOOLS:-$HOME/.zhengna-tools}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { $SUDO apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# C toolchain (rdkafka builds librdkafka from source).
if ! command -v cc >/dev/null || ! command -v make >/dev/null; then
  say "installing build tools"; apt_install build-essential pkg-config
fi

# PostgreSQL on 127.0.0.1:5432 accepting user postgres without a password (dev only).
if ! listening 5432; then
  if ! command -v pg_ctlcluster >/dev/null; then
    say "installing PostgreSQL"; apt_install postgresql
    # A fresh dev install: let local TCP connections in as in CI (trust on loopback only).
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      $SUDO sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    done
  fi
  say "starting PostgreSQL"
  for v in $(ls /etc/postgresql); do $SUDO pg_ctlcluster --skip-systemctl-redirect "$v" main start || true; done
  for _ in $(seq 1 30); do listening 5432 && break; sleep 1; done
  listening 5432 || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
fi

# Node.js for the grpc-web test client, buf and (later) the web build.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing Node.js"; apt_install nodejs npm
fi

# tansu, a Kafka-compatible broker written in Rust (Apache-2.0). ~11 minutes once.
if [ -z "${TANSU_BIN:-}" ] && [ ! -x "$TOOLS/bin/tansu" ] && ! command -v tansu >/dev/null; then
  say "building tansu 0.6.0 into $TOOLS (one time, about 11 minutes on 2 cores)"
  cargo install tansu --version 0.6.0 --locked --features "dynostore postgres" --root "$TOOLS"
fi

# Debian's Chromium for the browser tests (playwright-core drives it; no browser download),
# with CJK fonts so screenshots show Chinese text.
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  say "installing Chromium and CJK fonts"; apt_install --no-install-recommends chromium fonts-noto-cjk
fi
if ! fc-list 2>/dev/null | grep -qi "cjk\|wqy\|droid sans fallback"; then
  say "installing CJK fonts"; apt_install --no-install-recommends fonts-noto-cjk
fi

# Node packages (lockfiles committed; installs only when missing or changed). tools/ uses
# `npm install`: npm's lockfile for @bufbuild/buf lists only this platform's optional
# binary, which `npm ci` rejects.
for dir in integration-tests/grpc-web tools web; do
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    if [ "$dir" = tools ]; then verb=install; else verb=ci; fi
    say "npm $verb in $dir"; (cd "$dir" && npm "$verb" --no-audit --no-fund --loglevel=error)
  fi
done
say "ready"
