#!/usr/bin/env bash
# Allocations per proxied call, end to end with audit off: one HTTP/1.1 GET and one HTTP/2 POST, through a gateway
# process that counts its own mallocs (gateway-alloc-count, with ordo-one's malloc-interposer preloaded) while the
# simulator (upstream, mTLS) and curl (client) run as processes of their own. Counts are stable on a noisy machine,
# so they gate CI where times cannot: each is compared with bench/alloc-thresholds, and any count above its
# threshold fails the run.
#   bench/alloc-count.sh                 (CONFIGURATION=debug, the build bin/test makes; CALLS=150)
#   CONFIGURATION=release bench/alloc-count.sh   (the figures docs/performance.md quotes)
#   TRACING_RATIO=0 bench/alloc-count.sh (tracing on at that sampling ratio, exporting to a port nothing listens
#                                         on; at 0 the counts must stay within the same thresholds)
#   AUDIT_MODE=commit bench/alloc-count.sh (the audit trail on in that mode, wired as `serve` wires it, its writer's
#                                         allocations counted too; a figure for docs/performance.md, not gated)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CONFIGURATION=${CONFIGURATION:-debug}
# 150 calls per round keep the count steady and the run short.
CALLS=${CALLS:-150}
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
for product in klarna-gateway klarna-simulator gateway-alloc-count; do
  swift build -c "$CONFIGURATION" --product "$product" >/dev/null
done
bin=$(swift build -c "$CONFIGURATION" --show-bin-path)
W=$(mktemp -d "${TMPDIR:-/tmp}/kgw-alloc.XXXXXX")
sim=""
trap '[ -n "$sim" ] && kill $sim 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The simulator, unlimited (its per-account limits would turn the POSTs into 429s).
"$bin/klarna-simulator" init --dir "$W/sim" --merchants 1 >/dev/null
sed -i 's/^  per_account: .*/  per_account: {default: 0}/; s/^  per_acquirer: .*/  per_acquirer: {default: 0}/' "$W/sim/simulator.yaml"
"$bin/klarna-simulator" --config "$W/sim/simulator.yaml" > "$W/sim.log" 2>&1 &
sim=$!
for _ in $(seq 1 150); do grep -q "listening on" "$W/sim.log" && break; sleep 0.1; done
sim_port=$(sed -n 's|.*listening on https://127.0.0.1:\([0-9]*\).*|\1|p' "$W/sim.log")
[ -n "$sim_port" ] || { cat "$W/sim.log"; exit 1; }

# The gateway: plain HTTP/1.1 and TLS with HTTP/2 (the simulator's server certificate serves for both).
http_port=$(free_port); https_port=$(free_port)
tracing=""
[ -z "${TRACING_RATIO:-}" ] || tracing="tracing: {enabled: true, endpoint: \"http://127.0.0.1:$(free_port)/v1/traces\", sampling: {ratio: $TRACING_RATIO}}"
audit="audit: {enabled: false}"
[ -z "${AUDIT_MODE:-}" ] || audit="audit: {mode: $AUDIT_MODE, path: $W/audit.sqlite}"
cat > "$W/gateway.yaml" <<YAML
node_id: alloc
storage: gateway.sqlite
master_key: {file: master.key}
catalogue: $root/config/catalogue/operations.tsv
policies: {access: access.yaml, rate_limits: rate-limits.yaml, releases: $root/policies/releases.yaml}
listeners:
  - {name: http, address: 127.0.0.1, port: $http_port}
  - name: https
    address: 127.0.0.1
    port: $https_port
    http2: true
    tls: {certificate: $W/sim/server.pem, private_key: $W/sim/server.key, client_certificates: none}
upstream:
  ca_file: $W/sim/ca.pem
  egress: [{host: "localhost:$sim_port", environment: test}]
$audit
log_level: warning
$tracing
YAML
printf 'callers:\n  caller1: {merchants: ["*"], partners: ["*"], families: ["*"]}\n' > "$W/access.yaml"
printf 'merchant:\n  test: {default: {rate: 1000000, burst: 1000000}}\ncaller: {rate: 10000000, burst: 10000000}\n' > "$W/rate-limits.yaml"
gw() { "$bin/klarna-gateway" "$@" --config "$W/gateway.yaml"; }
gw keys init >/dev/null
gw partners add acq --environment test --api-key-file "$W/sim/acquirer-api-key" --client-cert "$W/sim/acquirer.pem" \
  --client-key "$W/sim/acquirer.key" --base-url "https://localhost:$sim_port" >/dev/null
gw merchants add m1 --partner acq --account krn:partner:global:account:test:M1 >/dev/null
token=$(gw callers add caller1)

# curl config files: the same call N times over one connection.
curl_config() { # FILE CALLS URL EXTRA_OPTIONS...
  local file=$1 n=$2 url=$3; shift 3
  { printf 'fail\nfail-early\nheader = "Authorization: Bearer %s"\nheader = "Klarna-Gateway-Merchant: m1"\n' "$token"
    for option in "$@"; do echo "$option"; done
    for _ in $(seq 1 "$n"); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done
  } > "$file"
}
get_url="http://127.0.0.1:$http_port/v2/accounts/krn:partner:global:account:test:M1/payment/transactions/krn:payment:eu1:transaction:seed-M1"
post_url="https://localhost:$https_port/v2/accounts/krn:partner:global:account:test:M1/payment/requests"
post_options=(http2 "cacert = \"$W/sim/ca.pem\"" 'header = "Content-Type: application/json"'
  'data = "{\"currency\":\"EUR\",\"amount\":11800,\"payment_request_reference\":\"alloc\"}"')
curl_config "$W/get-small.curl" 20 "$get_url" http1.1
curl_config "$W/get-large.curl" $((20 + CALLS)) "$get_url" http1.1
curl_config "$W/post-small.curl" 20 "$post_url" "${post_options[@]}"
curl_config "$W/post-large.curl" $((20 + CALLS)) "$post_url" "${post_options[@]}"

results=$(LD_PRELOAD="$bin/libMallocInterposerSwift.so" "$bin/gateway-alloc-count" "$W/gateway.yaml" \
  http1-get "$W/get-small.curl" "$W/get-large.curl" "$CALLS" \
  http2-post "$W/post-small.curl" "$W/post-large.curl" "$CALLS")
echo "$results"
status=0
# With the audit trail on, the counts are a figure to read, not a gate: the thresholds are for audit off.
[ -z "${AUDIT_MODE:-}" ] || exit 0
while read -r name measured; do
  count=${measured#allocations_per_call=}
  limit=$(awk -v c="$CONFIGURATION" -v n="$name" '$1 == c && $2 == n { print $3 }' "$root/bench/alloc-thresholds")
  [ -n "$limit" ] || { echo "no threshold for $CONFIGURATION $name in bench/alloc-thresholds"; status=1; continue; }
  if awk -v a="$count" -v b="$limit" 'BEGIN { exit !(a > b) }'; then
    echo "FAIL: $name makes $count allocations per call, over its threshold of $limit ($CONFIGURATION build)"; status=1
  else
    echo "ok: $name $count allocations per call (threshold $limit, $CONFIGURATION build)"
  fi
done <<< "$results"
exit $status
