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
for tool in nginx wrk openssl; do
  command -v $tool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk openssl >/dev/null; break; }
done
(cd "$root" && swift build -c release --product klarna-gateway >/dev/null)
BIN=$(cd "$root" && swift build -c release --show-bin-path)/klarna-gateway

"$peer/peer.sh" stop >/dev/null 2>&1 || true
rm -rf "$W"; "$peer/peer.sh" start
G=$W/gateway; mkdir -p "$G"
cat > "$G/gateway.yaml" <<YAML
node_id: bench
storage: gateway.sqlite
master_key: {file: master.key}
catalogue: $root/config/catalogue/operations.tsv
policies: {access: access.yaml, rate_limits: rate-limits.yaml, releases: $root/policies/releases.yaml}
listeners:
  - {name: http, address: 127.0.0.1, port: 18080}
  - name: https
    address: 127.0.0.1
    port: 18443
    http2: false
    tls: {certificate: $W/pki/server.pem, private_key: $W/pki/server.key, client_certificates: none}
upstream:
  ca_file: $W/pki/ca.pem
  egress: [{host: "localhost:9443", environment: test}]
log_level: warning
YAML
printf 'callers:\n' > "$G/access.yaml"
for c in 1 2 3 4; do printf '  caller%s: {merchants: ["*"], partners: ["*"], families: ["*"]}\n' $c >> "$G/access.yaml"; done
# The peer's limit_req is effectively unlimited; give the gateway the same room so both do the same work.
printf 'merchant:\n  test: {default: {rate: 1000000, burst: 1000000}}\ncaller: {rate: 10000000, burst: 10000000}\n' > "$G/rate-limits.yaml"
gw() { "$BIN" "$@" --config "$G/gateway.yaml"; }
gw keys init >/dev/null
printf 'klarna_test_api_%040d' 1 > "$G/api-key"
gw partners add acq_bench --environment test --api-key-file "$G/api-key" --client-cert "$W/pki/client.pem" --client-key "$W/pki/client.key" --base-url https://localhost:9443 >/dev/null
{ echo "id,partner,account"; for m in $(seq 1 "$BIG"); do echo "m$m,acq_bench,krn:partner:global:account:test:M$m"; done; } > "$G/merchants.csv"
start=$(date +%s.%N); gw merchants import "$G/merchants.csv" >/dev/null; end=$(date +%s.%N)
import_s=$(awk "BEGIN{printf \"%.2f\", $end - $start}")
TOKENS=""
for c in 1 2 3 4; do t=$(gw callers add caller$c); TOKENS="$TOKENS${TOKENS:+,}$t"; done
export TOKENS

start_gateway() {  # $1: audit mode or "off"
  if [ "$1" = off ]; then env KGW_AUDIT__ENABLED=false "$BIN" serve --config "$G/gateway.yaml" > "$G/serve.log" 2>&1 &
  else env KGW_AUDIT__MODE="$1" KGW_AUDIT__PATH="audit-$1.sqlite" "$BIN" serve --config "$G/gateway.yaml" > "$G/serve.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 1 100); do grep -q "klarna-gateway serving" "$G/serve.log" && break; sleep 0.2; done
  grep -q "klarna-gateway serving" "$G/serve.log" || { cat "$G/serve.log"; exit 1; }
}
stop_gateway() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
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
echo "$results" | awk '
  function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
  { split($2,a,"="); rps[$1]=a[2]; split($3,b,"="); p50[$1]=ms(b[2]); split($4,c,"="); p99[$1]=ms(c[2]) }
  END {
    for (s in rps) if (s ~ /^gateway/) { n = (s ~ /https/) ? "nginx-https" : "nginx-http"
      printf "%s / %s: rps ratio %.2f, p50 ratio %.2f, p99 ratio %.2f\n", s, n, rps[s]/rps[n], p50[s]/p50[n], p99[s]/p99[n] }
    if (("gateway-http-audit-off" in rps)) for (s in rps) if (s ~ /^gateway-http-audit-/ && s != "gateway-http-audit-off")
      printf "%s costs %.1f%% of throughput against audit off\n", s, 100 * (1 - rps[s]/rps["gateway-http-audit-off"])
  }'
echo "gateway RSS: idle ${idle} MB, after load ${loaded} MB, with ${BIG} merchants loaded (imported in ${import_s} s)"
