#!/usr/bin/env bash
# One gateway instance on SQLite against one on PostgreSQL, in one run, on loopback, under the same load (the
# bench peer's wrk load through `peer.sh measure`, plain HTTP, audit mode AUDIT_MODE, BIG merchants loaded):
#   1. sqlite: storage and audit trail in SQLite files;
#   2. postgres: storage and audit trail in one PostgreSQL database on this machine, the server with durable
#      settings (`bin/with-postgres --durable`: fsync, synchronous_commit and full_page_writes on); with a
#      PostgreSQL store the rate limits are leased from the ledger in it (docs/quota-leasing.md);
#   3. postgres-no-limits: the same instance with no rate-limit rule, so nothing is leased: the store and the
#      audit trail alone.
# Prints requests/s, p50 and p99 for each and the PostgreSQL/SQLite ratios; the CPU the gateway spends per request
# and the CPU the PostgreSQL server spends per request (every postgres process), with its commits, WAL flushes and
# the gateway's lease requests per request; the time `merchants import` of the BIG merchants takes into each
# store; and that each audit trail verifies afterwards. CPU comes from /proc, so it holds on a busy machine where
# rates do not.
#   bench/sqlite-vs-postgres.sh          (DUR=10s CONN=64 MERCHANTS=100 BIG=100000 AUDIT_MODE=commit)
# Needs nginx, wrk, openssl (installed if missing), Debian's postgresql package and a release build (made if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/.." && pwd)
peer=${PEER:-$root/../shared/bench-peer}
export W=${W:-${TMPDIR:-/tmp}/kgw-bench-sqlite-pg}; export MERCHANTS=${MERCHANTS:-100}
BIG=${BIG:-100000}
AUDIT_MODE=${AUDIT_MODE:-commit}
source "$here/lib/gateway.sh"

# Build first, then run the rest again under a durable throwaway server of this run's own (never one that
# KGW_TEST_POSTGRES_URL names: its settings are unknown).
if [ -z "${KGW_BENCH_SERVER:-}" ]; then
  kgw_tools
  kgw_build
  exec env -u KGW_TEST_POSTGRES_URL KGW_BENCH_SERVER=1 BIN="$BIN" "$root/bin/with-postgres" --durable "$0" "$@"
fi
server=$KGW_TEST_POSTGRES_URL
psql -q "$server" -c "CREATE DATABASE kgw_bench"
database="${server%/*}/kgw_bench?sslmode=disable"
sql() { psql -At "$server" -c "$1"; }

echo "load before: $(uptime)"
echo "PostgreSQL $(sql "SHOW server_version"): $(sql "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings
  WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers')")"
pid=""
kgw_peer_start
trap 'stop_gateway; "$peer/peer.sh" stop >/dev/null 2>&1' EXIT
kgw_provision "$W/gateway-sqlite" gateway.sqlite; sqlite_tokens=$TOKENS sqlite_import=$import_s
kgw_provision "$W/gateway-postgres" "$database"; postgres_tokens=$TOKENS postgres_import=$import_s

# The sum of one counter over all its label sets on the gateway's /metrics (warm-up included).
metric() { curl -sf http://127.0.0.1:18090/metrics | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $NF} END {print s + 0}'; }
# Transactions committed in the bench database and WAL flushes server-wide, so far.
pg_counts() { sql "SELECT xact_commit, (SELECT wal_sync FROM pg_stat_wal) FROM pg_stat_database WHERE datname = 'kgw_bench'" | tr '|' ' '; }
hz=$(getconf CLK_TCK)

# measure NAME DIR AUDIT_PATH TOKENS [VARIABLE=VALUE...]: serves the instance in DIR (with those variables),
# loads it through the peer, stops it and verifies its audit trail. Appends to results the peer's line followed
# by served= (calls answered or refused), gateway_cpu_us= and postgres_cpu_us= (CPU per call), commits=,
# wal_syncs= and leases=, all over the warm-up and the run (the counts until the gateway stopped), and to
# verified the verifier's summary.
results="" verified=""
measure() {
  local name=$1 audit=$3 tokens=$4 n0 g0 p0 c0 s0 l0 n1 g1 p1 c1 s1 l1 line
  G=$2; shift 4
  start_gateway "$AUDIT_MODE" "$audit" KGW_ADMIN__ADDRESS=127.0.0.1 KGW_ADMIN__PORT=18090 "$@"
  read -r c0 s0 < <(pg_counts); n0=$(metric kgw_requests_total); l0=$(metric kgw_quota_lease_requests_total)
  g0=$(cpu_ticks "$pid"); p0=$(postgres_ticks)
  line=$(TOKENS=$tokens "$peer/peer.sh" measure "$name" http://127.0.0.1:18080)
  g1=$(cpu_ticks "$pid"); p1=$(postgres_ticks)
  n1=$(metric kgw_requests_total); l1=$(metric kgw_quota_lease_requests_total)
  stop_gateway
  sleep 1   # the gateway's PostgreSQL sessions report their statistics as they end
  read -r c1 s1 < <(pg_counts)
  [ $((n1 - n0)) -gt 0 ] || { echo "$name: the gateway served nothing; $line" >&2; cat "$G/serve.log" >&2; exit 1; }
  env KGW_AUDIT__PATH="$audit" "$BIN" audit verify --config "$G/gateway.yaml" > "$G/verify.txt" || { cat "$G/verify.txt" >&2; exit 1; }
  verified="$verified$name audit trail verifies: $(grep -E "^(node |records checked)" "$G/verify.txt" | head -n 1)
"
  results="$results$(awk -v l="$line" -v n=$((n1 - n0)) -v g=$((g1 - g0)) -v p=$((p1 - p0)) -v c=$((c1 - c0)) -v s=$((s1 - s0)) \
    -v q=$((l1 - l0)) -v hz="$hz" 'BEGIN { printf "%s served=%d gateway_cpu_us=%.1f postgres_cpu_us=%.1f commits=%d wal_syncs=%d leases=%d",
      l, n, 1e6*g/hz/n, 1e6*p/hz/n, c, s, q }')
"
}

measure sqlite "$W/gateway-sqlite" audit.sqlite "$sqlite_tokens"
measure postgres "$W/gateway-postgres" "$database" "$postgres_tokens"
printf '{}\n' > "$W/gateway-postgres/no-limits.yaml"   # no rule: nothing to lease
measure postgres-no-limits "$W/gateway-postgres" "$database" "$postgres_tokens" KGW_POLICIES__RATE_LIMITS=no-limits.yaml
printf '%s%s' "$results" "$verified"
echo "$results" | awk "$kgw_results_awk"'
  { for (i = 6; i <= NF; i++) { split($i, kv, "="); v[$1, kv[1]] = kv[2] } }
  END {
    g = v["sqlite", "gateway_cpu_us"]
    printf "sqlite: gateway CPU per request %.0f us\n", g
    split("postgres postgres-no-limits", names, " ")
    for (i = 1; i <= 2; i++) { s = names[i]; pg = v[s, "gateway_cpu_us"]; ps = v[s, "postgres_cpu_us"]; n = v[s, "served"] / 1000
      printf "%s / sqlite: rps ratio %.2f, p50 ratio %.2f, p99 ratio %.2f\n", s, rps[s]/rps["sqlite"], p50[s]/p50["sqlite"], p99[s]/p99["sqlite"]
      printf "  CPU per request: gateway %.0f us (%.2fx) + PostgreSQL server %.0f us = %.0f us (%.2fx)\n", pg, pg/g, ps, pg + ps, (pg + ps)/g
      printf "  per 1000 requests: %.0f commits in the bench database, %.0f WAL flushes, %.0f lease requests\n",
        v[s, "commits"]/n, v[s, "wal_syncs"]/n, v[s, "leases"]/n }
  }'
awk -v b="$BIG" -v s="$sqlite_import" -v p="$postgres_import" \
  'BEGIN { printf "merchants import of %d merchants: sqlite %.2f s, postgres %.2f s (ratio %.2f)\n", b, s, p, p/s }'
echo "load after: $(uptime)"
