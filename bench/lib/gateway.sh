# Set-up shared by the benchmarks that drive a gateway with the bench peer's load (sourced, not run):
# tools, the release build, the peer, one gateway instance's config and records, start and stop, and the
# parsing of `peer.sh measure` lines. The sourcing script sets root (the repository), peer (the bench-peer
# directory), W (work directory, exported for the peer), MERCHANTS (exported for load.lua) and BIG.

# nginx, wrk and openssl, installed when one is missing.
kgw_tools() {
  local tool
  for tool in nginx wrk openssl; do
    command -v $tool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk openssl >/dev/null; break; }
  done
}

# The release binary (built when missing or stale); sets BIN. KGW_BIN names another binary instead (say, one built
# from an earlier commit, for a before/after in the same conditions).
kgw_build() {
  if [ -n "${KGW_BIN:-}" ]; then BIN=$KGW_BIN; return; fi
  BIN=$(kgw_release_binary klarna-gateway)
}

# The release build of this tree's product $1, built when missing or stale, the way the image and the systemd install
# build the gateway (docs/deploy.md: the Swift runtime linked statically, which costs 9% less CPU per call than the
# shared runtime; docs/performance.md, sixteenth round); prints its path. Its own scratch directory keeps the flag from
# rebuilding the tests' release build in .build (bench/alloc-count.sh, whose counts do not depend on the linking).
kgw_release_flags=(-c release --static-swift-stdlib --scratch-path "$root/.build-static")
kgw_release_binary() {
  (cd "$root" && swift build "${kgw_release_flags[@]}" --product "$1" >/dev/null)
  echo "$(cd "$root" && swift build "${kgw_release_flags[@]}" --show-bin-path)/$1"
}

# A fresh work directory with the peer (nginx proxy and the mTLS Klarna stand-in on 127.0.0.1:9443) running.
kgw_peer_start() {
  "$peer/peer.sh" stop >/dev/null 2>&1 || true
  rm -rf "$W"; "$peer/peer.sh" start
}

# The admin CLI against the instance in $G.
gw() { "$BIN" "$@" --config "$G/gateway.yaml"; }

# One gateway instance in directory $1 with storage $2 (a SQLite path or a postgres:// URL): its config (plain
# HTTP on 18080, HTTPS on 18443, the peer's upstream), policies that let four callers do anything at any rate,
# a master key, the peer's partner, BIG merchants (imported in import_s seconds) and four callers, whose tokens
# are exported in TOKENS. Leaves G set to the directory.
kgw_provision() {
  G=$1; mkdir -p "$G"
  cat > "$G/gateway.yaml" <<YAML
node_id: bench
storage: $2
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
  local c m start end t
  for c in 1 2 3 4; do printf '  caller%s: {merchants: ["*"], partners: ["*"], families: ["*"]}\n' $c >> "$G/access.yaml"; done
  # The peer's limit_req is effectively unlimited; give the gateway the same room so both do the same work.
  printf 'merchant:\n  test: {default: {rate: 1000000, burst: 1000000}}\ncaller: {rate: 10000000, burst: 10000000}\n' > "$G/rate-limits.yaml"
  gw keys init >/dev/null
  printf 'klarna_test_api_%040d' 1 > "$G/api-key"
  gw partners add acq_bench --environment test --api-key-file "$G/api-key" --client-cert "$W/pki/client.pem" --client-key "$W/pki/client.key" --base-url https://localhost:9443 >/dev/null
  { echo "id,partner,account"; for m in $(seq 1 "$BIG"); do echo "m$m,acq_bench,krn:partner:global:account:test:M$m"; done; } > "$G/merchants.csv"
  start=$(date +%s.%N); gw merchants import "$G/merchants.csv" >/dev/null; end=$(date +%s.%N)
  import_s=$(awk "BEGIN{printf \"%.2f\", $end - $start}")
  TOKENS=""
  for c in 1 2 3 4; do t=$(gw callers add caller$c); TOKENS="$TOKENS${TOKENS:+,}$t"; done
  export TOKENS
}

# Serves the instance in $G: $1 is the audit mode or "off", $2 the audit path (default audit-MODE.sqlite beside
# the config), and any further VARIABLE=VALUE arguments go into the gateway's environment. Sets pid.
start_gateway() {
  local mode=$1 audit=${2:-audit-$1.sqlite}
  shift $(($# > 1 ? 2 : 1))
  # Emptied here, not only by the redirection below: that runs in the background child, and until it has, the
  # loop would find the previous run's serving line and load a gateway that is not listening yet.
  : > "$G/serve.log"
  if [ "$mode" = off ]; then env KGW_AUDIT__ENABLED=false "$@" "$BIN" serve --config "$G/gateway.yaml" > "$G/serve.log" 2>&1 &
  else env KGW_AUDIT__MODE="$mode" KGW_AUDIT__PATH="$audit" "$@" "$BIN" serve --config "$G/gateway.yaml" > "$G/serve.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 1 300); do grep -q "klarna-gateway serving" "$G/serve.log" && break; sleep 0.2; done
  grep -q "klarna-gateway serving" "$G/serve.log" || { cat "$G/serve.log"; exit 1; }
  # A gateway that said it was serving must accept; if not, say so loudly, with what was listening, instead of
  # measuring a refused load. (The times this was seen were the stale serving line emptied above.)
  if ! (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null; then
    { echo "gateway $pid printed its serving line but refuses connections on 18080"; ps -o pid,stat,etime,args -p "$pid"
      ss -ltnp | grep -E ':1808|:1844'; cat "$G/serve.log"; } >&2
    exit 1
  fi
}
# "|| true" twice: in an EXIT trap under set -e, a gateway already stopped would otherwise end the trap early.
stop_gateway() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

# wrk's latency (`850.00us`, `1.20ms`, `2.00s`) in milliseconds, as an awk function: ms(v).
kgw_ms_awk='
  function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }'
# An awk program's start that reads `peer.sh measure` or `kgw_measure` lines ("NAME rps=… p50=… p99=… non2xx=…",
# more fields after those allowed) into rps[NAME], p50[NAME], p99[NAME] (milliseconds), non2xx[NAME] and, where
# the line has it, cpu[NAME] (CPU µs per call); append an END block.
kgw_results_awk="$kgw_ms_awk"'
  { split($2,a,"="); rps[$1]=a[2]; split($3,b,"="); p50[$1]=ms(b[2]); split($4,c,"="); p99[$1]=ms(c[2]); split($5,d,"="); non2xx[$1]=d[2]
    for (i = 6; i <= NF; i++) if ($i ~ /^cpu_us=/) { split($i,e,"="); cpu[$1]=e[2] } }'

# CPU ticks (user + system, all threads) used so far by the processes given, summed, from /proc/PID/stat.
cpu_ticks() {
  local total=0 p
  for p in "$@"; do total=$((total + $(stat_ticks "/proc/$p/stat"))); done
  echo $total
}

# User + system ticks in one /proc stat file (a process's or a thread's): fields 14 and 15 after the command name,
# which may hold spaces, so counted from the closing parenthesis.
stat_ticks() { sed 's/.*) //' "$1" | awk '{ print $12 + $13 }'; }

# CPU ticks so far of one process's event-loop threads (SwiftNIO's `NIO-ELT-*`, the gateway's data plane), from
# /proc/PID/task/*/stat. The rest of the process's CPU (the audit writer's queue and checkpointer, the trace
# exporter, PostgreSQL's client) is its total minus this: threads that ended during a run count there too.
loop_ticks() {
  local total=0 t
  for t in /proc/"$1"/task/*; do
    case $(cat "$t/comm" 2>/dev/null) in NIO-ELT-*) total=$((total + $(stat_ticks "$t/stat"))) ;; esac
  done
  echo $total
}

# The nginx peer's proxy processes (master and workers), for CPU per call.
nginx_proxy_pids() { local master; master=$(cat "$W/proxy.pid"); echo "$master" $(pgrep -P "$master"); }

# CPU ticks so far of the whole PostgreSQL server of `bin/with-postgres`: the postmaster, its live children, and
# the children it has reaped (its cutime and cstime), so a backend that ended during a run still counts.
postgres_ticks() {
  { awk '{print $14 + $15 + $16 + $17}' "/proc/$KGW_TEST_POSTGRES_PID/stat"
    for child in $(ps -o pid= --ppid "$KGW_TEST_POSTGRES_PID"); do awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || true; done
  } | awk '{s += $1} END {print s}'
}

# `peer.sh measure` with the CPU the processes PID... spent per call added: one warm-up wrk run, then the measured
# run with the processes' CPU read before and after. Prints "NAME rps=… p50=… p99=… non2xx=… cpu_us=…", and with
# DB_CPU=1 (under `bin/with-postgres`) db_us=…, the PostgreSQL server's CPU per call.
kgw_measure() {
  local name=$1 url=$2 d=${DUR:-10s} c=${CONN:-64} before after loops_before=0 loops_after=0 db=${DB_CPU:-0} db_before=0 db_after=0
  shift 2
  timeout 15 wrk -t1 -c"$c" -d2s -s "$peer/load.lua" "$url" >/dev/null 2>&1
  before=$(cpu_ticks "$@")
  [ $# = 1 ] && loops_before=$(loop_ticks "$1")
  [ "$db" = 1 ] && db_before=$(postgres_ticks)
  timeout 90 wrk -t1 -c"$c" -d"$d" --latency -s "$peer/load.lua" "$url" > "$W/logs/$name.txt" 2>&1
  after=$(cpu_ticks "$@")
  [ $# = 1 ] && loops_after=$(loop_ticks "$1")
  [ "$db" = 1 ] && db_after=$(postgres_ticks)
  # One process (a gateway): its CPU per call split into its event loops' and the rest's (writer, exporter).
  awk -v n="$name" -v ticks=$((after - before)) -v loops=$((loops_after - loops_before)) -v split_=$(($# == 1)) \
    -v dbticks=$((db_after - db_before)) -v db="$db" -v hz="$(getconf CLK_TCK)" '
    /requests in/{calls=$1} /Requests\/sec/{r=$2} / 50%/{p50=$2} / 99%/{p99=$2} /Non-2xx/{e=$NF}
    END{us = calls > 0 ? 1000000/hz/calls : 0
        printf "%s rps=%s p50=%s p99=%s non2xx=%s cpu_us=%.1f", n, r, p50, p99, (e==""?0:e), ticks*us
        if (split_) printf " loops_us=%.1f rest_us=%.1f", loops*us, (ticks-loops)*us
        if (db == 1) printf " db_us=%.1f", dbticks*us
        printf "\n"}' "$W/logs/$name.txt"
}
