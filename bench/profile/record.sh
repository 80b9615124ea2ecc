#!/usr/bin/env bash
# Profiles the release gateway under the bench's load: `perf record -g` on the gateway process while wrk runs the
# peer's load (64 connections), then `perf script` into OUT.txt for bench/profile/attribute.py.
#   bench/profile/record.sh OUT [MODE] [LEVEL]     MODE: off (default) or an audit mode; LEVEL: warning (default)
#   EXTRA="KGW_TRACING__ENABLED=true KGW_TRACING__ENDPOINT=…" bench/profile/record.sh OUT   (more environment)
#   KGW_BIN=/path/to/klarna-gateway bench/profile/record.sh OUT                           (another build)
#   URL=https://127.0.0.1:18443 bench/profile/record.sh OUT commit                         (the HTTPS listener)
# Needs perf (Debian's linux-perf), nginx, wrk and openssl, and a release build (made if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd); root=$(cd "$here/.." && pwd)
peer=${PEER:-$root/../shared/bench-peer}
out=${1:?usage: bench/profile/record.sh OUT [MODE] [LEVEL]}
export W=${W:-${TMPDIR:-/tmp}/kgw-profile}; export MERCHANTS=${MERCHANTS:-100} BIG=${BIG:-2000}
source "$here/lib/gateway.sh"
command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
kgw_tools
kgw_build
kgw_peer_start >/dev/null
kgw_provision "$W/gateway" gateway.sqlite >/dev/null
trap 'stop_gateway; "$peer/peer.sh" stop >/dev/null 2>&1' EXIT
start_gateway "${2:-off}" "" KGW_LOG_LEVEL="${3:-warning}" ${EXTRA:-}
# A warm-up, then 8 s of samples inside a 9 s run, so the recording sees load from its first to its last sample.
url=${URL:-http://127.0.0.1:18080}
timeout 15 wrk -t1 -c64 -d2s -s "$peer/load.lua" "$url" >/dev/null 2>&1
perf record -F 1999 -g -p "$pid" -o "$out.data" -- sleep 8 >/dev/null 2>&1 &
recording=$!
timeout 30 wrk -t1 -c64 -d9s --latency -s "$peer/load.lua" "$url" | grep -E "Requests/sec|Non-2xx|^ +99%"
wait $recording || true
perf script -i "$out.data" > "$out.txt" 2>/dev/null
echo "samples in $out.txt: bench/profile/attribute.py $out.txt modules"
