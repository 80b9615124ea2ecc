#!/usr/bin/env bash
# Side-by-side: klarna-gateway and nginx doing the same job (../shared/bench-peer/) against the same mTLS
# upstream, in one run, on loopback. Prints requests/s and p50/p99 for each and the gateway/nginx ratios, plus
# the gateway's resident memory idle and under load with BIG merchants loaded. Bounded: each wrk run is DUR.
#   bench/gateway-vs-nginx.sh            (DUR=10s CONN=64 MERCHANTS=100 BIG=100000 AUDIT_MODES="off commit fsync async" INFO_RUN=1 TRACING=0)
#   bin/with-postgres --durable bench/gateway-vs-nginx.sh   (adds the audit trail in PostgreSQL, commit mode)
# The gateway is measured once per audit mode over plain HTTP (the audit cost, side by side with audit off), and
# in the default mode over HTTPS; with INFO_RUN=1, once more with audit off at log_level info (the shipped default;
# the others run at warning). With TRACING=1, twice more with audit off and tracing on, sampling 100% and 0%, exporting
# to a local OTLP/HTTP sink (bench/lib/otlp-sink.sh: nginx discarding them), against the audit-off run (tracing off). Each line also gives the CPU per call (user + system, from /proc) of the gateway and
# of nginx's proxy processes summed, and the ratio of the two; a gateway's line splits its CPU into its event loops'
# (loops_us) and the rest's (rest_us: the audit writer, the trace exporter, the log writer).
# The runs follow one another, and on a shared machine the later ones drift (a mode measured last can look a third
# dearer than it is): each block of runs is also read against audit off measured again either side of it; for a
# mode's cost or a before/after of a few percent, use bench/pairs.sh, which alternates.
# Needs nginx, wrk, openssl (installed if missing) and a release build (made if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/.." && pwd)
peer=${PEER:-$root/../shared/bench-peer}
export W=${W:-${TMPDIR:-/tmp}/kgw-bench}; export MERCHANTS=${MERCHANTS:-100}
BIG=${BIG:-100000}
AUDIT_MODES=${AUDIT_MODES:-off commit fsync async}
source "$here/lib/gateway.sh"
kgw_tools
kgw_build
kgw_peer_start
kgw_provision "$W/gateway" gateway.sqlite
sink=""
trap 'stop_gateway; "$peer/peer.sh" stop >/dev/null 2>&1; [ -z "$sink" ] || kill "$sink" 2>/dev/null || true' EXIT
rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$pid/status; }

# The peer knows its own four tokens (load.lua's default); the gateway is sent the tokens it issued above.
# CPU per call: the gateway process against nginx's proxy processes (master and workers summed); the upstream
# stand-in is the same for both and not counted.
results=$(unset TOKENS; kgw_measure nginx-http http://127.0.0.1:8080 $(nginx_proxy_pids); kgw_measure nginx-https https://127.0.0.1:8443 $(nginx_proxy_pids))
for mode in $AUDIT_MODES; do
  start_gateway "$mode"
  [ "$mode" = commit ] && idle=$(rss)
  results="$results
$(kgw_measure "gateway-http-audit-$mode" http://127.0.0.1:18080 $pid)"
  if [ "$mode" = commit ]; then
    results="$results
$(kgw_measure gateway-https-audit-commit https://127.0.0.1:18443 $pid)"
    loaded=$(rss)
  fi
  stop_gateway
done
# Under `bin/with-postgres --durable` (a throwaway PostgreSQL with fsync and synchronous commit on), the audit trail
# in PostgreSQL as well, `commit` mode: issue 15's line is 25% of throughput against audit off.
if [ -n "${KGW_TEST_POSTGRES_URL:-}" ]; then
  start_gateway commit "$KGW_TEST_POSTGRES_URL"
  results="$results
$(kgw_measure gateway-http-audit-commit-postgres http://127.0.0.1:18080 $pid)"
  stop_gateway
fi
# On a shared machine the runs drift, so audit off is measured again between the audit modes and the info and
# tracing runs, and once more after those: each block's costs are also read against the mean of the audit-off runs
# either side of it (a drift that is steady over the block cancels out).
again() {
  start_gateway off
  results="$results
$(kgw_measure "gateway-http-audit-off-$1" http://127.0.0.1:18080 $pid)"
  stop_gateway
}
again between
# The shipped log level (info: one access-log line per call) against the bench's warning, audit off.
if [ "${INFO_RUN:-1}" = 1 ]; then
  start_gateway off "" KGW_LOG_LEVEL=info
  results="$results
$(kgw_measure gateway-http-audit-off-info http://127.0.0.1:18080 $pid)"
  stop_gateway
fi
# Tracing on (audit off, log_level warning) at 100% and at 0% sampling, to a sink that discards the spans.
if [ "${TRACING:-0}" = 1 ]; then
  "$here/lib/otlp-sink.sh" 14318 & sink=$!
  for ratio in 1 0; do
    start_gateway off "" KGW_TRACING__ENABLED=true KGW_TRACING__ENDPOINT=http://127.0.0.1:14318/v1/traces KGW_TRACING__SAMPLING__RATIO=$ratio
    results="$results
$(kgw_measure "gateway-http-audit-off-tracing-$ratio" http://127.0.0.1:18080 $pid)"
    stop_gateway
  done
fi
if [ "${INFO_RUN:-1}" = 1 ] || [ "${TRACING:-0}" = 1 ]; then again after; fi
echo "$results"
echo "$results" | awk "$kgw_results_awk"'
  END {
    for (s in rps) if (s ~ /^gateway/) { n = (s ~ /https/) ? "nginx-https" : "nginx-http"
      printf "%s / %s: rps ratio %.2f, p50 ratio %.2f, p99 ratio %.2f, CPU per call ratio %.2f (%.1f / %.1f us)\n", s, n, rps[s]/rps[n], p50[s]/p50[n], p99[s]/p99[n], (cpu[n] > 0 ? cpu[s]/cpu[n] : 0), cpu[s], cpu[n] }
    first = rps["gateway-http-audit-off"]; between = rps["gateway-http-audit-off-between"]; after = rps["gateway-http-audit-off-after"]
    if (first > 0) for (s in rps) if (s ~ /^gateway-http-audit-/ && s !~ /^gateway-http-audit-off(-between|-after)?$/)
      printf "%s costs %.1f%% of throughput against audit off%s\n", s, 100 * (1 - rps[s]/first), (s ~ /tracing/ ? " (tracing off)" : "")
    for (s in rps) if (s ~ /^gateway-http-audit-/ && s !~ /^gateway-http-audit-off/ && first > 0 && between > 0)
      printf "%s costs %.1f%% against the audit-off runs either side (%.0f and %.0f req/s)\n", s, 100 * (1 - 2 * rps[s]/(first + between)), first, between
    for (s in rps) if (s ~ /-(info|tracing-[01])$/ && between > 0 && after > 0)
      printf "%s costs %.1f%% against the audit-off runs either side (%.0f and %.0f req/s)\n", s, 100 * (1 - 2 * rps[s]/(between + after)), between, after
    info = "gateway-http-audit-off-info"
    if ((info in rps) && between > 0 && after > 0)
      printf "log_level info / warning (audit off, the runs either side): rps ratio %.2f, p99 ratio %.2f, CPU per call ratio %.2f\n", 2 * rps[info]/(between + after), 2 * p99[info]/(p99["gateway-http-audit-off-between"] + p99["gateway-http-audit-off-after"]), 2 * cpu[info]/(cpu["gateway-http-audit-off-between"] + cpu["gateway-http-audit-off-after"])
    else if ((info in rps) && first > 0)
      printf "log_level info / warning (audit off): rps ratio %.2f, p99 ratio %.2f, CPU per call ratio %.2f\n", rps[info]/first, p99[info]/p99["gateway-http-audit-off"], cpu[info]/cpu["gateway-http-audit-off"]
  }'
echo "gateway RSS: idle ${idle:-?} MB, after load ${loaded:-?} MB, with ${BIG} merchants loaded (imported in ${import_s} s)"
