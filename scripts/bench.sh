#!/usr/bin/env bash
# `npm run bench -- <args>` (after the build): the benchmark runs on Node >= 22.
#
# The issue's rule: peers at their newest releases, and if those need Node >= 22, the whole
# comparison — Upshift included — runs on Node 24 from the npm package `node@24`. pg-boss 12
# (Node >= 22.12) and graphile-worker 0.18 (Node >= 22.18) do, so on an older Node this hands
# the run to scripts/node24.sh (a copy of the project with the dependency tree Node 24 gets from
# the lockfile); every system is spawned with the runner's own Node (bench/harness.ts), so one
# run never mixes Node versions. BENCH_NODE=current runs on the current Node anyway (Upshift's
# own scenarios work on Node 20; the newest peers may not).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
major="$(node -p 'process.versions.node.split(".")[0]')"
if ((major >= 22)) || [[ "${BENCH_NODE:-}" == current ]]; then
  exec node "$ROOT/dist/bench/run.js" "$@"
fi
printf '[bench] Node %s here; the newest peers need Node >= 22: running on Node 24 (scripts/node24.sh bench)\n' "$(node -v)" >&2
exec bash "$ROOT/scripts/node24.sh" bench "$@"
