#!/usr/bin/env bash
# Side-by-side: klarna-gateway and nginx doing the same job (../shared/bench-peer/) against the same mTLS
# upstream, in one run, on loopback. Prints requests/s, p50/p99 and CPU per call for each, the gateway/nginx ratios,
# what each audit mode, the shipped log level and tracing cost against audit off, and the gateway's resident memory
# idle and under load with BIG merchants loaded. Bounded: each wrk run is DUR.
#   bench/gateway-vs-nginx.sh            (ROUNDS=4 DUR=6s CONN=64 MERCHANTS=100 BIG=100000 AUDIT_MODES="off commit fsync async" INFO_RUN=1 TRACING=0)
#   bin/with-postgres --durable bench/gateway-vs-nginx.sh   (adds the audit trail in PostgreSQL, commit mode)
# The configurations measured: nginx over HTTP and HTTPS; a bare SwiftNIO proxy passing the same calls on over mTLS
# and nothing else (bench/bare-proxy: what NIO's pipeline, codecs and TLS cost here, a NIO proxy's ceiling); the
# gateway over plain HTTP once per audit mode, and in `commit` over HTTPS too; with INFO_RUN=1, audit off at
# log_level info (the shipped default; the others run at warning); with TRACING=1, audit off with tracing on at
# 100% and at 0% sampling, exporting to a local OTLP/HTTP sink (bench/lib/otlp-sink.sh: nginx discarding them).
# Each line gives the CPU per call (user + system, from /proc) of the gateway (or the bare proxy) and of nginx's
# proxy processes summed; a gateway's line splits its CPU into its event loops'
# (loops_us) and the rest's (rest_us: the audit writer, the trace exporter, the log writer); with the trail in
# PostgreSQL, the server's processes' CPU per call too (db_us), since on one machine it comes out of the same cores.
# On a shared machine consecutive runs drift by more than the costs measured (a configuration measured last could
# look a third dearer than it is), so the run measures in ROUNDS rounds, the order reversed every other round: nginx,
# then audit off before and after each other configuration. A configuration's cost is read against the mean of the
# audit-off runs either side of it, seconds apart, and its ratio to nginx (and to the bare proxy) within its round;
# the summary gives each ratio's mean with its standard error, the number of readings and the lowest and highest.
# ROUNDS=1 is a quick look, not a figure.
# Needs nginx, wrk, openssl (installed if missing) and a release build (made if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/.." && pwd)
peer=${PEER:-$root/../shared/bench-peer}
export W=${W:-${TMPDIR:-/tmp}/kgw-bench}; export MERCHANTS=${MERCHANTS:-100}
BIG=${BIG:-100000}
ROUNDS=${ROUNDS:-4}
export DUR=${DUR:-6s}
AUDIT_MODES=${AUDIT_MODES:-off commit fsync async}
case " $AUDIT_MODES " in *" off "*) ;; *) echo "AUDIT_MODES must include off: every cost is read against it" >&2; exit 1 ;; esac
source "$here/lib/gateway.sh"
kgw_tools
kgw_build
# The ceiling: a SwiftNIO proxy doing nothing but pass the load's calls on over mTLS (bench/bare-proxy), built from
# this tree (BARE_BIN names another).
bare=${BARE_BIN:-$(kgw_release_binary bare-proxy-bench)}
kgw_peer_start
kgw_provision "$W/gateway" gateway.sqlite
sink=""
trap 'stop_gateway; "$peer/peer.sh" stop >/dev/null 2>&1; [ -z "$sink" ] || kill "$sink" 2>/dev/null || true' EXIT
rss() { awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$pid/status; }
if [ "${TRACING:-0}" = 1 ]; then "$here/lib/otlp-sink.sh" 14318 & sink=$!; fi
tracing() { echo KGW_TRACING__ENABLED=true KGW_TRACING__ENDPOINT=http://127.0.0.1:14318/v1/traces KGW_TRACING__SAMPLING__RATIO="$1"; }

# The configurations read against audit off. Each is "NAME MODE AUDIT_PATH [VARIABLE=VALUE...]"; nginx's are
# measured on the peer, with the tokens it knows (load.lua's default), and the gateway's with those it issued.
off="gateway-http-audit-off off -"
others=()
for mode in $AUDIT_MODES; do [ "$mode" = off ] || others+=("gateway-http-audit-$mode $mode -"); done
# Under `bin/with-postgres --durable` (a throwaway PostgreSQL with fsync and synchronous commit on), the audit trail
# in PostgreSQL as well, `commit` mode: issue 15's line is 25% of throughput against audit off.
if [ -n "${KGW_TEST_POSTGRES_URL:-}" ]; then others+=("gateway-http-audit-commit-postgres commit $KGW_TEST_POSTGRES_URL"); fi
if [ "${INFO_RUN:-1}" = 1 ]; then others+=("gateway-http-audit-off-info off - KGW_LOG_LEVEL=info"); fi
if [ "${TRACING:-0}" = 1 ]; then
  others+=("gateway-http-audit-off-tracing-1 off - $(tracing 1)" "gateway-http-audit-off-tracing-0 off - $(tracing 0)")
fi

# One configuration's run in round $2: appends its measured lines (NAME-rROUND ...) to $results and shows them. The
# first round's `commit` run also reads the gateway's memory, idle and after its load (the HTTPS run, measured in the
# same process). Each gateway run starts on a fresh SQLite trail, so that later rounds do not write a larger file.
results=$W/results.txt
: > "$results"
measure() {
  local name mode audit r=$2
  read -r name mode audit _ <<<"$1"
  local -a env
  read -r -a env <<<"$(echo "$1" | cut -s -d' ' -f4-)"
  case $name in
    nginx-http | nginx-https)
      local url=http://127.0.0.1:8080
      [ "$name" = nginx-https ] && url=https://127.0.0.1:8443
      (unset TOKENS; kgw_measure "$name-r$r" "$url" $(nginx_proxy_pids)) | tee -a "$results"; return ;;
    bare-nio-http)
      "$bare" 18090 9443 "$W/pki/ca.pem" "$W/pki/client.pem" "$W/pki/client.key" > "$W/logs/bare.log" 2>&1 & pid=$!
      for _ in $(seq 1 100); do grep -q serving "$W/logs/bare.log" && break; sleep 0.1; done
      grep -q serving "$W/logs/bare.log" || { cat "$W/logs/bare.log"; exit 1; }
      kgw_measure "$name-r$r" http://127.0.0.1:18090 "$pid" | tee -a "$results"
      stop_gateway; return ;;
  esac
  [ "$audit" = - ] && audit=""
  rm -f "$G"/audit-*.sqlite*
  start_gateway "$mode" "$audit" KGW_LOG_LEVEL=warning "${env[@]}"
  [ "$name" = gateway-http-audit-commit ] && [ "$r" = 1 ] && idle=$(rss)
  # With the trail in PostgreSQL the server's CPU per call too.
  local db=0
  case $audit in postgres*) db=1 ;; esac
  DB_CPU=$db kgw_measure "$name-r$r" http://127.0.0.1:18080 "$pid" | tee -a "$results"
  if [ "$name" = gateway-http-audit-commit ]; then
    kgw_measure "gateway-https-audit-commit-r$r" https://127.0.0.1:18443 "$pid" | tee -a "$results"
    [ "$r" = 1 ] && loaded=$(rss)
  fi
  stop_gateway
}

# Each round: nginx, then audit off before and after every other gateway configuration, so that each is read
# against the mean of the audit-off runs either side of it, seconds apart; the whole order reversed every other round.
sequence=("nginx-http" "nginx-https" "bare-nio-http")
for config in "${others[@]}"; do sequence+=("$off" "$config"); done
sequence+=("$off")
for r in $(seq 1 "$ROUNDS"); do
  order=("${sequence[@]}")
  if [ $((r % 2)) = 0 ]; then order=(); for ((i = ${#sequence[@]} - 1; i >= 0; i--)); do order+=("${sequence[$i]}"); done; fi
  for config in "${order[@]}"; do measure "$config" "$r"; done
done
# The results in the order measured: per round, each configuration against nginx in that round (audit off's runs
# averaged), and each gateway configuration against the audit-off runs just before and after it.
sed -E 's/^([^ ]*)-r([0-9]+) /\1 \2 /' "$results" | awk "$kgw_ms_awk"'
  # Mean, lowest and highest of the ratio x over the rounds, kept under key k, with the standard error of the
  # mean: a line the mean misses by less than about two of those is not shown either way.
  function add(k, x) { sum[k] += x; sq[k] += x * x; n[k]++; if (!(k in lo) || x < lo[k]) lo[k] = x; if (!(k in hi) || x > hi[k]) hi[k] = x }
  function se(k,   v) { v = n[k] > 1 ? (sq[k] - sum[k] * sum[k] / n[k]) / (n[k] - 1) / n[k] : 0; return v > 0 ? sqrt(v) : 0 }
  function show(k, fmt, scale) { return n[k] ? sprintf(fmt " ± " fmt " (%d: " fmt " to " fmt ")", scale * sum[k]/n[k], scale * se(k), n[k], scale * lo[k], scale * hi[k]) : "-" }
  BEGIN { off = "gateway-http-audit-off" }
  { s = $1; r = $2; names[s] = 1; rounds[r] = 1
    delete v; for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = (kv[1] ~ /^p(50|99)$/) ? ms(kv[2]) : kv[2] }
    # Sums per configuration and round (audit off runs several times a round), and over everything.
    t[s, r, "rps"] += v["rps"]; t[s, r, "p99"] += v["p99"]; t[s, r, "cpu"] += v["cpu_us"]; c[s, r]++
    add(s SUBSEP "rps", v["rps"]); add(s SUBSEP "p99", v["p99"]); add(s SUBSEP "cpu", v["cpu_us"])
    if ("loops_us" in v) { add(s SUBSEP "loops", v["loops_us"]); add(s SUBSEP "rest", v["rest_us"]) }
    if ("db_us" in v) add(s SUBSEP "db", v["db_us"])
    if (s == off) {
      for (q in waiting) if (waiting[q] == r && (q, "off") in prev) {
        add(q SUBSEP "cost", 1 - 2 * held[q, "rps"] / (prev[q, "off"] + v["rps"]))
        add(q SUBSEP "p99-off", 2 * held[q, "p99"] / (prev[q, "p99"] + v["p99"]))
        add(q SUBSEP "cpu-off", 2 * held[q, "cpu"] / (prev[q, "cpu"] + v["cpu_us"])) }
      delete waiting; last[r, "rps"] = v["rps"]; last[r, "p99"] = v["p99"]; last[r, "cpu"] = v["cpu_us"]
    } else if (s ~ /^gateway-http-audit-/ && (r, "rps") in last) {
      waiting[s] = r; held[s, "rps"] = v["rps"]; held[s, "p99"] = v["p99"]; held[s, "cpu"] = v["cpu_us"]
      prev[s, "off"] = last[r, "rps"]; prev[s, "p99"] = last[r, "p99"]; prev[s, "cpu"] = last[r, "cpu"]
    } }
  END {
    for (s in names) for (r in rounds) if (c[s, r] && s ~ /^gateway-http/ && c["bare-nio-http", r]) {
      add(s SUBSEP "b-rps", (t[s, r, "rps"] / c[s, r]) / t["bare-nio-http", r, "rps"])
      add(s SUBSEP "b-cpu", (t[s, r, "cpu"] / c[s, r]) / t["bare-nio-http", r, "cpu"]) }
    for (s in names) for (r in rounds) if (c[s, r] && s ~ /^(gateway|bare)/) {
      peer = (s ~ /https/) ? "nginx-https" : "nginx-http"
      if (!c[peer, r]) continue
      add(s SUBSEP "x-rps", (t[s, r, "rps"] / c[s, r]) / t[peer, r, "rps"]); add(s SUBSEP "x-p99", (t[s, r, "p99"] / c[s, r]) / t[peer, r, "p99"])
      if (t[peer, r, "cpu"] > 0) add(s SUBSEP "x-cpu", (t[s, r, "cpu"] / c[s, r]) / t[peer, r, "cpu"]) }
    for (s in names) {
      line = sprintf("%s: %.0f req/s, p99 %.2f ms, CPU %.1f us per call", s, sum[s SUBSEP "rps"]/n[s SUBSEP "rps"], sum[s SUBSEP "p99"]/n[s SUBSEP "p99"], sum[s SUBSEP "cpu"]/n[s SUBSEP "cpu"])
      if (n[s SUBSEP "loops"]) line = line sprintf(" (loops %.1f + rest %.1f)", sum[s SUBSEP "loops"]/n[s SUBSEP "loops"], sum[s SUBSEP "rest"]/n[s SUBSEP "rest"])
      if (n[s SUBSEP "db"]) line = line ", database server CPU " show(s SUBSEP "db", "%.1f", 1) " us per call"
      print "mean of " n[s SUBSEP "rps"] " runs, " line }
    for (s in names) if (n[s SUBSEP "x-rps"]) {
      peer = (s ~ /https/) ? "nginx-https" : "nginx-http"
      printf "%s / %s, per round: rps ratio %s; p99 ratio %s; CPU per call ratio %s\n", s, peer, show(s SUBSEP "x-rps", "%.2f", 1), show(s SUBSEP "x-p99", "%.2f", 1), show(s SUBSEP "x-cpu", "%.2f", 1) }
    for (s in names) if (n[s SUBSEP "b-rps"])
      printf "%s / bare-nio-http, per round: rps ratio %s; CPU per call ratio %s\n", s, show(s SUBSEP "b-rps", "%.2f", 1), show(s SUBSEP "b-cpu", "%.2f", 1)
    for (s in names) if (n[s SUBSEP "cost"])
      printf "%s against the audit-off runs either side: costs %s of throughput; p99 ratio %s; CPU per call ratio %s\n", s, show(s SUBSEP "cost", "%.1f%%", 100), show(s SUBSEP "p99-off", "%.2f", 1), show(s SUBSEP "cpu-off", "%.2f", 1)
  }' | sort
echo "gateway RSS: idle ${idle:-?} MB, after load ${loaded:-?} MB, with ${BIG} merchants loaded (imported in ${import_s} s)"
