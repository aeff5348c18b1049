# Shared by the load scenarios (sourced): the processes a scenario starts and ends, free ports, CPU from
# /proc, and a MeshGuard pair. The sourcing script sets WORK (its temporary directory) and BIN first.

PIDS=()
# Ends what the scenario started, by id, removes the CPU groups it made, and its directory.
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true
  for group in /sys/fs/cgroup/meshguard-bench-$$-* /sys/fs/cgroup/cpu/meshguard-bench-$$-*; do rmdir "$group" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# limited NAME CMD...: runs CMD in place of this (background) shell, so with the same pid. With PROXY_CPUS set, it
# first joins a CPU group of its own (NAME) holding it to that many cores' worth, as a container with a CPU limit
# starts: a cgroup v2 cpu.max or v1 CFS quota, or, without a writable CPU controller, taskset to as many whole cores.
# Joining before CMD's first instruction matters: a runtime that sizes itself to its cores reads the limit at start
# (.NET's processor count, hence its thread pool and socket engines, follows cpu.max); a process moved into a group
# once running keeps the sizes it chose for the whole machine, which a pod never sees. Child processes (nginx's
# workers) share the group. The groups are named after this script's pid ($$, the same in its subshells), so cleanup
# finds them all.
limited() {
  local name=$1 quota group; shift
  if [ -z "${PROXY_CPUS:-}" ]; then exec "$@"; fi
  # awk, not python3: this runs between the timed start and the process, so it must cost next to nothing
  quota=$(awk -v cpus="$PROXY_CPUS" 'BEGIN { printf "%d", cpus * 100000 }')
  if [ -w /sys/fs/cgroup/cgroup.subtree_control ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
    group="/sys/fs/cgroup/meshguard-bench-$$-$name"
    mkdir -p "$group" && echo "$quota 100000" > "$group/cpu.max"
  elif [ -w /sys/fs/cgroup/cpu ] || [ -w /sys/fs/cgroup/cpu,cpuacct ]; then
    group="$(readlink -f /sys/fs/cgroup/cpu)/meshguard-bench-$$-$name"
    mkdir -p "$group" && echo 100000 > "$group/cpu.cfs_period_us" && echo "$quota" > "$group/cpu.cfs_quota_us"
  else
    exec taskset -c "0-$(awk -v cpus="$PROXY_CPUS" 'BEGIN { n = int(cpus); if (n < cpus) n++; if (n < 1) n = 1; print n - 1 }')" "$@"
  fi
  echo "$BASHPID" > "$group/cgroup.procs"
  exec "$@"
}

# cp_scale_driver: sets DRIVER to the cp-scale driver (loadtests/MeshGuard.ControlPlaneScale), published again when
# a source it is built from is newer.
cp_scale_driver() {
  DRIVER="$ROOT/out/loadtests/cp-scale"
  if [ ! -x "$DRIVER" ] || [ -n "$(find loadtests/MeshGuard.ControlPlaneScale control-plane/src proxy/src/MeshGuard.FlowLog proxy/src/MeshGuard.Spiffe -newer "$DRIVER" -name '*.cs' -print -quit)" ]; then
    dotnet publish loadtests/MeshGuard.ControlPlaneScale -c Release -r linux-x64 --self-contained false \
      -p:PublishSingleFile=true -p:DebugType=none -o "$ROOT/out/loadtests" --nologo -v quiet
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_http URL [CURL_ARGS...]: until it answers 2xx, at most 30 s.
wait_http() {
  local url=$1; shift
  for _ in $(seq 1 300); do curl -sf "$@" "$url" >/dev/null && return 0; sleep 0.1; done
  echo "timeout waiting for $url" >&2; exit 1
}

# utime + stime of processes, in seconds (a process already gone counts 0).
cpu_seconds() {
  local ticks=0 pid
  for pid in "$@"; do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
  python3 -c "print($ticks / $(getconf CLK_TCK))"
}

# ready_poll ADMIN_PORT: until the sidecar's /ready answers 200 (SVID and config in hand), at most 30 s.
# Bash's /dev/tcp rather than a curl per try: a process start per poll would add its own ~7 ms to the figure.
ready_poll() {
  local port=$1 line
  for _ in $(seq 1 10000); do
    if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
      printf 'GET /ready HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$port" >&3
      line=""; read -r line <&3 || true; exec 3>&-
      case "$line" in *" 200 "*) return 0 ;; esac
    fi
    sleep 0.002
  done
  echo "sidecar on admin port $port not ready after 30 s" >&2; exit 1
}

# start_mesh_pair DIR APP_PORT PROXY_BINARY FLOWS(on|off) [CONTROL_PLANE_ARGS...]
# A control plane with data in DIR/cp (policies already there are in force), orders' sidecar in front of the
# app on APP_PORT and frontend's sidecar calling it. Sets MESH_URL (frontend's outbound, /orders/1),
# MESH_SIDECARS and MESH_METRICS (the two sidecars' pids and /metrics URLs), MESH_CP and MESH_CP_ADMIN (the control plane's pid and admin port); appends each sidecar's
# start-to-ready milliseconds to DIR/ready-ms (first orders', against a control plane that has served no one
# yet, then frontend's, against one that has). MESH_APP_PROTOCOL (auto, http1, http2) is orders' --app-protocol.
start_mesh_pair() {
  local dir=$1 app=$2 proxy=$3 flows=$4; shift 4
  local p_boot p_grpc p_admin p_hook out="" svc
  mkdir -p "$dir/cp"
  p_boot=$(free_port); p_grpc=$(free_port); p_admin=$(free_port); p_hook=$(free_port)
  # Every port its own: two control planes side by side must not both want the webhook's default 15017.
  "$BIN/meshguard-cp" --data "$dir/cp" --bootstrap-port "$p_boot" --grpc-port "$p_grpc" --admin-port "$p_admin" --webhook-port "$p_hook" "$@" >"$dir/cp.log" 2>&1 &
  PIDS+=($!)
  MESH_CP=$! MESH_CP_ADMIN=$p_admin
  wait_http "http://127.0.0.1:$p_admin/healthz"
  MESH_SIDECARS="" MESH_METRICS=""
  for svc in orders frontend; do
    local token in_p out_p adm met started flow_args=()
    token=$("$BIN/meshctl" token create --data "$dir/cp" --spiffe-id "spiffe://mesh.local/ns/shop/sa/$svc")
    in_p=$(free_port); out_p=$(free_port); adm=$(free_port); met=$(free_port)
    if [ "$flows" = on ]; then flow_args=(--flow-log-dir "$dir/$svc-flows"); fi
    started=$(date +%s%N)
    limited "$(basename "$dir")-$svc" "$proxy" --cp "https://127.0.0.1:$p_boot" --cp-grpc "https://127.0.0.1:$p_grpc" --cp-bundle "$dir/cp/bundle.pem" \
      --join-token "$token" --service "$svc" --app-port "$app" --app-protocol "${MESH_APP_PROTOCOL:-auto}" --inbound-port "$in_p" --outbound-port "$out_p" \
      --admin-port "$adm" --metrics-port "$met" "${flow_args[@]}" >"$dir/$svc.log" 2>&1 &
    PIDS+=($!)
    MESH_SIDECARS="$MESH_SIDECARS $!" MESH_METRICS="$MESH_METRICS http://127.0.0.1:$met/metrics"
    ready_poll "$adm"
    echo $(( ($(date +%s%N) - started) / 1000000 )) >> "$dir/ready-ms"
    if [ "$svc" = frontend ]; then out=$out_p; fi
  done
  MESH_SIDECARS=${MESH_SIDECARS# } MESH_METRICS=${MESH_METRICS# }
  MESH_URL="http://127.0.0.1:$out/orders/1"
  # The frontend sidecar has learned where orders is (an HTTP/2-only app checks for itself: MESH_NO_WAIT=1).
  if [ -z "${MESH_NO_WAIT:-}" ]; then wait_http "$MESH_URL" -H "Host: orders"; fi
}

# nginx_conf DIR SERVER_BLOCKS: a small nginx configuration in DIR (two workers, no access log, long keepalive).
nginx_conf() { # $1 dir, $2 server block(s)
  mkdir -p "$1/tmp"
  cat > "$1/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/tmp/body; proxy_temp_path $1/tmp/proxy; fastcgi_temp_path $1/tmp/fcgi;
  uwsgi_temp_path $1/tmp/uwsgi; scgi_temp_path $1/tmp/scgi;
  keepalive_requests 1000000;
  client_max_body_size 2m; client_body_buffer_size 2m;
  $2
}
EOF
}

# start_nginx DIR [LAUNCHER...]: nginx with DIR/nginx.conf, run through LAUNCHER if given (ip netns exec NS).
start_nginx() { local dir=$1; shift; "$@" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" & PIDS+=($!); LAST_PID=$!; }

# Certificates for the plain proxies' mTLS leg (nginx, HAProxy) in $WORK/pki: one CA, a server certificate for
# localhost, a client certificate; NAME.bundle.pem is certificate and key together, as HAProxy reads them.
pki() {
  local d="$WORK/pki"; mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  for name in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' > "$d/$name.ext"
    openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null
    cat "$d/$name.pem" "$d/$name.key" > "$d/$name.bundle.pem"
  done
}

# The global and defaults sections both HAProxy peers run with: two threads, HTTP mode, connections to the next
# hop reused for any request (http-reuse always).
HAPROXY_COMMON="global
  nbthread 2
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always"

# start_postgres: Debian's PostgreSQL in $WORK/pg (its own initdb, a random password, loopback, as the postgres user),
# with an empty database "meshguard"; sets FLOW_STORE (a --flow-store URL), STORE_PID and PGPASSWORD/PGPORT for psql.
start_postgres() { # sets FLOW_STORE and STORE_PID
  local port pgbin password
  port=$(free_port); pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  mkdir -p "$WORK/pg"; echo "$password" > "$WORK/pg/password"; chown -R postgres:postgres "$WORK/pg"
  setpriv --reuid=postgres --regid=postgres --init-groups "$pgbin/initdb" -D "$WORK/pg/data" -U meshguard \
    --auth=scram-sha-256 --pwfile="$WORK/pg/password" -E UTF8 --locale=C >"$WORK/pg/initdb.log"
  setpriv --reuid=postgres --regid=postgres --init-groups "$pgbin/postgres" -D "$WORK/pg/data" -p "$port" \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories="$WORK/pg" >"$WORK/pg/server.log" 2>&1 & PIDS+=($!); STORE_PID=$!
  for _ in $(seq 100); do grep -q 'ready to accept connections' "$WORK/pg/server.log" && break; sleep 0.1; done
  PGPASSWORD=$password psql -q -h 127.0.0.1 -p "$port" -U meshguard -d postgres -c 'CREATE DATABASE meshguard'
  FLOW_STORE="postgres://meshguard:$password@127.0.0.1:$port/meshguard"
  export PGPASSWORD=$password PGPORT=$port PGHOST=127.0.0.1 PGUSER=meshguard PGDATABASE=meshguard
}

