#!/usr/bin/env bash
# Klarna's webhooks through the gateway (docs/webhooks.md): verified and persisted events per second at the webhook
# listener, and the delivery lag to a healthy receiver.
#
# wrk posts N distinct, correctly signed events (made beforehand, so the load generator does no HMAC) over TLS to
# `POST /klarna/webhooks/acq` of one `klarna-gateway serve` on a SQLite store; every 200 means the event is
# committed. The routes send each one to a destination served by nginx (204). The figures come from the store
# afterwards: events stored over the load's duration, and per event the time from its receipt (`received_at_us`) to
# the end of its successful delivery attempt (`webhook_attempts.time_us`), p50/p99/max.
#
#   bench/webhooks.sh [EVENTS] [CONNECTIONS]       # defaults 20000 and 32
#   KGW_BIN=.build/debug/klarna-gateway bench/webhooks.sh   # another binary (default: a release build, made first)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peer=$root/../shared/bench-peer
. "$root/bench/lib/gateway.sh"
events=${1:-20000}
connections=${2:-32}
W=${TMPDIR:-/tmp}/kgw-webhooks-bench
kgw_tools
kgw_build
rm -rf "$W"; mkdir -p "$W"
"$peer/pki.sh" "$W/pki" >/dev/null 2>&1
G=$W/gateway; mkdir -p "$G"

# The receiver: nginx answering 204 to every POST, on loopback.
cat > "$W/nginx.conf" <<NGINX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $W/nginx-body;
  server { listen 127.0.0.1:18090; location / { return 204; } }
}
NGINX
nginx -c "$W/nginx.conf"
trap 'nginx -c "$W/nginx.conf" -s stop 2>/dev/null || true; [ -n "${gw_pid:-}" ] && kill "$gw_pid" 2>/dev/null || true' EXIT

cat > "$G/gateway.yaml" <<YAML
node_id: webhooks-bench
storage: gateway.sqlite
master_key: {file: master.key}
catalogue: $root/config/catalogue/operations.tsv
policies: {access: access.yaml, webhooks: webhooks.yaml}
listeners:
  - {name: loopback, address: 127.0.0.1, port: 18080}
  - name: webhooks
    address: 127.0.0.1
    port: 18444
    klarna_webhooks: true
    tls: {certificate: $W/pki/server.pem, private_key: $W/pki/server.key, client_certificates: none}
upstream:
  ca_file: $W/pki/ca.pem
  egress: [{host: "localhost:9443", environment: test}]
log_level: warning
audit: {path: audit.sqlite}
webhooks: {concurrency_per_destination: 32, poll_interval_ms: 100}
YAML
printf 'callers: {}\n' > "$G/access.yaml"
printf 'routes:\n  - {events: ["payment.*"], merchants: ["*"], destinations: [sink]}\n' > "$G/webhooks.yaml"
gw keys init >/dev/null
printf 'klarna_test_api_%s' "$(openssl rand -hex 16)" > "$G/api-key"
gw partners add acq --environment test --api-key-file "$G/api-key" --client-cert "$W/pki/client.pem" --client-key "$W/pki/client.key" \
  --base-url https://localhost:9443 >/dev/null
gw merchants add m1 --partner acq --account krn:partner:global:account:test:M1 >/dev/null
openssl rand -hex 32 > "$W/signing-secret"
gw webhooks keys add --partner acq --key-id bench-key --secret-file "$W/signing-secret" >/dev/null
openssl rand -hex 24 > "$W/sink-secret"
gw webhooks destinations add sink --url http://127.0.0.1:18090/hook --secret-file "$W/sink-secret" >/dev/null

# The events, signed beforehand, as a Lua table wrk cycles through once (each thread its own share).
python3 - "$events" "$W/signing-secret" "$W/events.lua" <<'PY'
import hmac, hashlib, json, sys
n, secret, out = int(sys.argv[1]), open(sys.argv[2]).read().strip().encode(), sys.argv[3]
with open(out, "w") as f:
    f.write("events = {\n")
    for i in range(n):
        body = json.dumps({"metadata": {"event_type": "payment.transaction.captured", "event_id": f"bench-{i}", "event_version": "v2",
                           "occurred_at": "2026-01-01T00:00:00Z", "subject_account_id": "krn:partner:global:account:test:M1", "live": False},
                           "payload": {"payment_transaction_id": f"krn:payment:eu1:transaction:{i}", "amount": 1000, "currency": "EUR"}},
                          separators=(",", ":"))
        signature = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        f.write("{%s,%s},\n" % (json.dumps(body), json.dumps(signature)))
    f.write("}\n")
PY
# One index per thread, striding by the thread count, so the threads never send the same event; past the end the
# thread stops sending new events (wrk then repeats the last one, answered as a duplicate and not counted).
cat > "$W/post.lua" <<'LUA'
dofile(os.getenv("EVENTS_LUA"))
local count = 0
function setup(thread) count = count + 1; thread:set("id", count) end
function init(args) index = id; stride = tonumber(os.getenv("THREADS")) end
function request()
  local event = events[math.min(index, #events)]
  index = index + stride
  return wrk.format("POST", "/klarna/webhooks/acq",
    {["Content-Type"] = "application/json", ["Klarna-Signing-Key-Id"] = "bench-key", ["Klarna-Signature"] = event[2]}, event[1])
end
LUA

(cd "$G" && exec "$BIN" serve --config "$G/gateway.yaml" >"$W/serve.out" 2>"$W/serve.err") &
gw_pid=$!
for _ in $(seq 1 200); do grep -q "klarna-gateway serving" "$W/serve.out" 2>/dev/null && break; sleep 0.1; done
threads=2
# Long enough to send every event at the target rate; the store says how many arrived in that time.
duration=$(( events / 2000 + 2 ))
EVENTS_LUA=$W/events.lua THREADS=$threads wrk -t$threads -c"$connections" -d${duration}s --latency -s "$W/post.lua" https://127.0.0.1:18444 > "$W/wrk.out"
python3 - "$G/gateway.sqlite" "$events" "$duration" "$W/wrk.out" <<'PY'
import sqlite3, sys, time
path, events, duration, wrk = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
db = sqlite3.connect(path)
first, last, stored = db.execute("SELECT MIN(received_at_us), MAX(received_at_us), COUNT(*) FROM webhook_events").fetchone()
span = max(1e-6, (last - first) / 1e6)
for _ in range(600):
    pending = db.execute("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'").fetchone()[0]
    if pending == 0: break
    time.sleep(0.5)
lags = sorted(r[0] / 1000.0 for r in db.execute(
    "SELECT MIN(a.time_us) - e.received_at_us FROM webhook_events e JOIN webhook_attempts a ON a.event_id = e.event_id "
    "WHERE a.status BETWEEN 200 AND 299 GROUP BY e.event_id"))
def p(q): return lags[min(len(lags) - 1, int(len(lags) * q))] if lags else float("nan")
errors = [l.strip() for l in open(wrk) if "Non-2xx" in l or "Socket errors" in l]
print(f"webhooks: {stored} events stored in {span:.2f} s = {stored / span:.0f} verified+persisted events/s "
      f"({min(stored, events)} of {events} distinct events sent); delivered {len(lags)}, pending {pending}; "
      f"delivery lag p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {lags[-1] if lags else float('nan'):.1f} ms"
      + (f"; wrk: {'; '.join(errors)}" if errors else ""))
PY
grep -E "Latency|Requests/sec" "$W/wrk.out" | sed 's/^/wrk: /'
