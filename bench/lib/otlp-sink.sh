#!/usr/bin/env bash
# A collector stand-in for the tracing benchmark: nginx on 127.0.0.1:PORT accepting OTLP/HTTP exports, discarding
# them and answering an empty success. It shares the machine's cores with the gateway, so it must cost as little as a
# remote collector would cost this machine: nginx, not a Python server (whose CPU took a few percent of a core
# and showed up as tracing's cost, docs/performance.md). Runs in the foreground as the script's own process (exec), so
# killing that pid stops nginx; its few-byte config stays in a temporary folder.
#   bench/lib/otlp-sink.sh PORT
set -euo pipefail
port=${1:?usage: otlp-sink.sh PORT}
dir=$(mktemp -d "${TMPDIR:-/tmp}/kgw-otlp-sink.XXXXXX")
cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_max_body_size 64m;
  client_body_buffer_size 4m;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fastcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port;
    location /v1/traces { default_type application/x-protobuf; return 200 ""; }
  }
}
CONF
exec nginx -c "$dir/nginx.conf" -e "$dir/error.log"
