#!/usr/bin/env bash
# Side-by-side: klarna-gateway and nginx doing the same job (../shared/bench-peer/) against the same mTLS
# upstream, in one run, on loopback. Prints requests/s and p50/p99 for each and the gateway/nginx ratios, plus
# the gateway's resident memory idle and under load with BIG merchants loaded. Bounded: each wrk run is DUR.
#   bench/gateway-vs-nginx.sh            (DUR=10s CONN=64 MERCHANTS=100 BIG=100000 AUDIT_MODES="off commit fsync async")
# The gateway is measured once per audit mode over plain HTTP (the audit cost, side by side with audit off), and
# in the default mode over HTTPS.
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
trap 'stop_gateway; "$peer/peer.sh" stop >/dev/null 2>&1' EXIT
rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$pid/status; }

# The peer knows its own four tokens (load.lua's default); the gateway is sent the tokens it issued above.
results=$(env -u TOKENS "$peer/peer.sh" measure nginx-http http://127.0.0.1:8080; env -u TOKENS "$peer/peer.sh" measure nginx-https https://127.0.0.1:8443)
for mode in $AUDIT_MODES; do
  start_gateway "$mode"
  [ "$mode" = commit ] && idle=$(rss)
  results="$results
$("$peer/peer.sh" measure "gateway-http-audit-$mode" http://127.0.0.1:18080)"
  if [ "$mode" = commit ]; then
    results="$results
$("$peer/peer.sh" measure gateway-https-audit-commit https://127.0.0.1:18443)"
    loaded=$(rss)
  fi
  stop_gateway
done
echo "$results"
echo "$results" | awk "$kgw_results_awk"'
  END {
    for (s in rps) if (s ~ /^gateway/) { n = (s ~ /https/) ? "nginx-https" : "nginx-http"
      printf "%s / %s: rps ratio %.2f, p50 ratio %.2f, p99 ratio %.2f\n", s, n, rps[s]/rps[n], p50[s]/p50[n], p99[s]/p99[n] }
    if (("gateway-http-audit-off" in rps)) for (s in rps) if (s ~ /^gateway-http-audit-/ && s != "gateway-http-audit-off")
      printf "%s costs %.1f%% of throughput against audit off\n", s, 100 * (1 - rps[s]/rps["gateway-http-audit-off"])
  }'
echo "gateway RSS: idle ${idle} MB, after load ${loaded} MB, with ${BIG} merchants loaded (imported in ${import_s} s)"
