#!/usr/bin/env bash
# Two gateway configurations (or two builds, each with a store it provisioned) measured in turn, ROUNDS times, the order
# swapped every round: on this machine a single run drifts by a third between runs minutes apart, and the modes
# measured last in one run come out slower, so a before/after or a mode's cost is read from pairs, not from one run.
# Each line: req/s, p50, p99, non-2xx and CPU per call (user + system from /proc) of the gateway, split into its event
# loops' and the rest's (the audit writer, the trace exporter: bench/lib/gateway.sh, loop_ticks); then, per round,
# B's req/s and CPU per call as ratios to A's, and last their means over the rounds with standard errors.
#   bench/pairs.sh                                   (ROUNDS=4 DUR=6s CONN=64 MERCHANTS=100 BIG=2000)
#   A_MODE=off B_MODE=commit bench/pairs.sh          (audit `commit` against audit off)
#   B_ENV="KGW_LOG_LEVEL=info" bench/pairs.sh        (the shipped log level against `warning`)
#   A_BIN=/tmp/old/klarna-gateway bench/pairs.sh     (another build against this tree's release build)
# A_MODE/B_MODE: an audit mode or `off`; A_ENV/B_ENV: extra environment for `serve`, e.g. KGW_TRACING__ENABLED=true.
# Needs nginx (the peer's upstream stand-in), wrk, openssl and a release build (made if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/.." && pwd)
peer=${PEER:-$root/../shared/bench-peer}
export W=${W:-${TMPDIR:-/tmp}/kgw-pairs}; export MERCHANTS=${MERCHANTS:-100}
BIG=${BIG:-2000}
ROUNDS=${ROUNDS:-4}
export DUR=${DUR:-6s}
source "$here/lib/gateway.sh"
kgw_tools
kgw_build
A_BIN=${A_BIN:-$BIN}; B_BIN=${B_BIN:-$BIN}
A_MODE=${A_MODE:-off}; B_MODE=${B_MODE:-off}
A_ENV=${A_ENV:-}; B_ENV=${B_ENV:-}
kgw_peer_start
# Each build provisions its own store when the two differ: a newer build migrates a store's schema on start, and
# an older one then refuses it.
BIN=$A_BIN kgw_provision "$W/gateway-a" gateway.sqlite >/dev/null
A_DIR=$G A_TOKENS=$TOKENS
if [ "$B_BIN" = "$A_BIN" ]; then
  B_DIR=$A_DIR B_TOKENS=$A_TOKENS
else
  BIN=$B_BIN kgw_provision "$W/gateway-b" gateway.sqlite >/dev/null
  B_DIR=$G B_TOKENS=$TOKENS
fi
pid=""
trap 'stop_gateway; "$peer/peer.sh" stop >/dev/null 2>&1' EXIT

# One side's run: a fresh audit store, the gateway at `warning` unless the side's environment says otherwise.
run_side() {
  local side=$1 round=$2 bin mode env
  if [ "$side" = A ]; then bin=$A_BIN mode=$A_MODE env=$A_ENV G=$A_DIR TOKENS=$A_TOKENS
  else bin=$B_BIN mode=$B_MODE env=$B_ENV G=$B_DIR TOKENS=$B_TOKENS; fi
  BIN=$bin
  rm -f "$G"/audit-*.sqlite*
  # shellcheck disable=SC2086 # env is a list of NAME=value words
  start_gateway "$mode" "" KGW_LOG_LEVEL=warning $env
  kgw_measure "$side-round$round" http://127.0.0.1:18080 "$pid"
  stop_gateway
}

lines=""
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for side in $order; do
    # A gateway that does not start prints its log (start_gateway) into the captured output: show it, then stop.
    if ! line=$(run_side "$side" "$round"); then echo "$line" >&2; exit 1; fi
    echo "$line"
    lines="$lines
$line"
  done
done
echo "A: $A_MODE $A_ENV ($A_BIN); B: $B_MODE $B_ENV ($B_BIN)"
# Each round's ratios, then their means over the rounds with standard errors: the figure to quote.
echo "$lines" | awk '
  function add(name, x) { sum[name] += x; sq[name] += x * x; n[name]++ }
  function mean(name) { return sum[name] / n[name] }
  function stderr(name,   m, var) { m = mean(name); var = n[name] > 1 ? (sq[name] - n[name] * m * m) / (n[name] - 1) : 0
                                    return var > 0 ? sqrt(var / n[name]) : 0 }
  /rps=/ { split($1, k, "-round"); for (i = 2; i <= NF; i++) { split($i, kv, "="); v[k[1], k[2], kv[1]] = kv[2] }
           if (k[2] > last) last = k[2] }
  END { for (r = 1; r <= last; r++) {
          printf "round %d: B/A req/s %.2f, CPU per call %.2f (%s / %s us; loops %s / %s, rest %s / %s)\n", r,
            v["B", r, "rps"] / v["A", r, "rps"], v["B", r, "cpu_us"] / v["A", r, "cpu_us"], v["B", r, "cpu_us"], v["A", r, "cpu_us"],
            v["B", r, "loops_us"], v["A", r, "loops_us"], v["B", r, "rest_us"], v["A", r, "rest_us"]
          add("rps", v["B", r, "rps"] / v["A", r, "rps"]); add("cpu", v["B", r, "cpu_us"] / v["A", r, "cpu_us"])
          add("A_loops", v["A", r, "loops_us"]); add("B_loops", v["B", r, "loops_us"])
          add("A_rest", v["A", r, "rest_us"]); add("B_rest", v["B", r, "rest_us"]) }
        printf "mean of %d rounds: B/A req/s %.3f ± %.3f, CPU per call %.3f ± %.3f; loops %.1f / %.1f us, rest %.1f / %.1f us (B / A)\n",
          last, mean("rps"), stderr("rps"), mean("cpu"), stderr("cpu"), mean("B_loops"), mean("A_loops"), mean("B_rest"), mean("A_rest") }'
