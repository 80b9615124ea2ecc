#!/usr/bin/env bash
# Is the Klarna simulator ever the bottleneck of a gateway measurement? In one run, on loopback:
#   1. the simulator alone, driven by its own mTLS load generator (`klarna-simulator bench`);
#   2. the gateway (audit commit, plain-HTTP loopback listener) driven by wrk, with the simulator as its upstream.
# Prints each rate, the CPU each process spent per request (from /proc, so it holds on a busy machine where
# rates do not), and two headroom ratios: simulator rate alone / gateway rate, and gateway CPU per request /
# simulator CPU per request (the rate the simulator sustains on the CPU the gateway needs, as a multiple of the
# gateway's rate). The aim (#3) is at least 3 for both.
#   bench/simulator-headroom.sh          (DUR=10 CONN=32 MERCHANTS=100)
# Needs wrk and a release build (installed / made if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/.." && pwd)
DUR=${DUR:-10}; CONN=${CONN:-32}; MERCHANTS=${MERCHANTS:-100}
W=${W:-${TMPDIR:-/tmp}/kgw-headroom}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
(cd "$root" && swift build -c release --product klarna-gateway >/dev/null && swift build -c release --product klarna-simulator >/dev/null)
bin=$(cd "$root" && swift build -c release --show-bin-path)

rm -rf "$W"; mkdir -p "$W"
"$bin/klarna-simulator" init --dir "$W/sim" --merchants "$MERCHANTS" --port 19443 --control-port 19444 >/dev/null
# Klarna's test quotas would refuse most of a load test: switch the simulator's limits off for both runs.
sed -i 's/^  per_account: .*/  per_account: {default: 0}/; s/^  per_acquirer: .*/  per_acquirer: {default: 0}/' "$W/sim/simulator.yaml"
cat > "$W/gateway.yaml" <<YAML
node_id: headroom
storage: gateway.sqlite
master_key: {file: master.key}
catalogue: $root/config/catalogue/operations.tsv
policies: {access: access.yaml, rate_limits: rate-limits.yaml, releases: $root/policies/releases.yaml}
listeners:
  - {name: loopback, address: 127.0.0.1, port: 18081}
upstream:
  ca_file: $W/sim/ca.pem
  egress: [{host: "localhost:19443", environment: test}]
log_level: warning
audit: {path: audit.sqlite, mode: commit}
YAML
printf 'callers:\n  bench: {merchants: ["*"], partners: ["*"], families: ["*"]}\n' > "$W/access.yaml"
printf 'merchant:\n  test: {default: {rate: 1000000, burst: 1000000}}\ncaller: {rate: 10000000, burst: 10000000}\n' > "$W/rate-limits.yaml"
gw() { "$bin/klarna-gateway" "$@" --config "$W/gateway.yaml"; }
gw keys init >/dev/null
gw partners add acq_bench --environment test --api-key-file "$W/sim/acquirer-api-key" \
  --client-cert "$W/sim/acquirer.pem" --client-key "$W/sim/acquirer.key" --base-url https://localhost:19443 >/dev/null
{ echo "id,partner,account"; for m in $(seq 1 "$MERCHANTS"); do echo "m$m,acq_bench,krn:partner:global:account:test:M$m"; done; } > "$W/merchants.csv"
gw merchants import "$W/merchants.csv" >/dev/null
token=$(gw callers add bench)

"$bin/klarna-simulator" --config "$W/sim/simulator.yaml" > "$W/simulator.log" 2>&1 & sim=$!
"$bin/klarna-gateway" serve --config "$W/gateway.yaml" > "$W/gateway.log" 2>&1 & gwpid=$!
trap 'kill $gwpid $sim 2>/dev/null; wait 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  grep -q "listening on" "$W/simulator.log" && grep -q "klarna-gateway serving" "$W/gateway.log" && break; sleep 0.2
done
grep -q "klarna-gateway serving" "$W/gateway.log" || { cat "$W/gateway.log"; exit 1; }

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system ticks
hz=$(getconf CLK_TCK)

# 1. The simulator alone (warm-up, then the measured run).
"$bin/klarna-simulator" bench --dir "$W/sim" --port 19443 --connections "$CONN" --duration 2 >/dev/null
s0=$(cpu $sim)
alone=$("$bin/klarna-simulator" bench --dir "$W/sim" --port 19443 --connections "$CONN" --duration "$DUR")
s1=$(cpu $sim)
sim_rate=$(echo "$alone" | sed -n 's/.*rate=\([0-9.]*\).*/\1/p')
sim_done=$(echo "$alone" | sed -n 's/.*completed=\([0-9]*\).*/\1/p')

# 2. The gateway in front of the simulator: each request reads the seeded transaction of one merchant.
cat > "$W/load.lua" <<LUA
local n, i = $MERCHANTS, 0
request = function()
  i = i + 1
  local m = (i % n) + 1
  return wrk.format("GET", "/v2/accounts/m" .. m .. "/payment/transactions/krn:payment:eu1:transaction:seed-M" .. m,
    { ["Authorization"] = "Bearer $token" })
end
LUA
wrk -t1 -c"$CONN" -d2s -s "$W/load.lua" http://127.0.0.1:18081 >/dev/null
g0=$(cpu $gwpid); t0=$(cpu $sim)
wrk -t1 -c"$CONN" -d"${DUR}s" -s "$W/load.lua" http://127.0.0.1:18081 > "$W/wrk.txt"
g1=$(cpu $gwpid); t1=$(cpu $sim)
gw_rate=$(awk '/Requests\/sec/{print $2}' "$W/wrk.txt")
gw_done=$(awk '/requests in/{print $1}' "$W/wrk.txt")
non2xx=$(awk '/Non-2xx/{print $NF}' "$W/wrk.txt"); non2xx=${non2xx:-0}

awk -v sr="$sim_rate" -v sd="$sim_done" -v sc="$((s1 - s0))" -v gr="$gw_rate" -v gd="$gw_done" -v gc="$((g1 - g0))" \
    -v tc="$((t1 - t0))" -v hz="$hz" -v bad="$non2xx" 'BEGIN {
  sim_us = 1e6 * sc / hz / sd; gw_us = 1e6 * gc / hz / gd; behind_us = 1e6 * tc / hz / gd
  printf "simulator alone:        %8.0f req/s, %6.1f us CPU per request\n", sr, sim_us
  printf "gateway -> simulator:   %8.0f req/s, gateway %6.1f us CPU per request, simulator %6.1f us (non-2xx %d)\n", gr, gw_us, behind_us, bad
  printf "headroom by rate:       %.2fx (simulator alone / gateway)\n", sr / gr
  printf "headroom by CPU:        %.2fx (gateway CPU per request / simulator CPU per request behind it)\n", gw_us / behind_us
}'
