#!/usr/bin/env bash
# Klarna's webhooks through the gateway: verified and persisted events per second at the webhook listener (each 200
# means the event is committed in the SQLite store), and the delivery lag from that 200 to a healthy receiver
# (p50/p99), with the simulator, the gateway (`klarna-gateway serve`, its own process) and the receiver on this
# machine. The measuring harness is Tests/GatewayWebhooksTests/WebhookBenchmark.swift.
#
#   bench/webhooks.sh [EVENTS] [CONNECTIONS]        # defaults 4000 and 32
#   CONFIGURATION=release bench/webhooks.sh          # a release build (what production runs; builds first)
set -euo pipefail
cd "$(dirname "$0")/.."
configuration="${CONFIGURATION:-debug}"
swift build -c "$configuration" --build-tests
out="$(mktemp)"
KGW_WEBHOOK_BENCH=1 KGW_WEBHOOK_BENCH_EVENTS="${1:-4000}" KGW_WEBHOOK_BENCH_CONNECTIONS="${2:-32}" KGW_WEBHOOK_BENCH_OUT="$out" \
  swift test -c "$configuration" --skip-build --filter WebhookBenchmark >/dev/null
echo "($configuration build) $(cat "$out")"
rm -f "$out"
