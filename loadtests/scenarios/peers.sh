#!/usr/bin/env bash
# MeshGuard's sidecar pair beside its peers, in one run, on loopback:
#   client -> outbound proxy -> mTLS -> inbound proxy -> backend (nginx returning a small body)
# for each configuration:
#   direct     client -> backend (the floor)
#   yarp       two plain YARP forwarders (loadtests/MeshGuard.PlainYarp), HTTP/2 over mTLS between them
#   nginx      two Debian nginx, keepalive pools, HTTP/1.1 over mTLS between them
#   haproxy    two Debian HAProxy, HTTP/2 over mTLS between them (http-reuse always)
#   meshguard  a real control plane, two sidecars with SVIDs, a policy allowing the call, flow logs on
#   meshguard-aot  the same with the NativeAOT build of the sidecar (out/aot/meshguard-proxy)
#   meshguard-aot-noflow  the NativeAOT pair with flow logs off: the data path alone, as the plain proxies run here
#                  (no access logs); the targets are for flow logs on, this row says what the flow log costs of them
# Every configuration gets the same warm-up, then the rounds are interleaved (A B C D A B C D ...) so machine
# drift hits all alike. Scenarios: maximum throughput (wrk, 32 connections), 1 MiB bodies down and up (wrk, 8
# connections, MiB/s), HTTP/2 from the client (h2load, cleartext prior knowledge, 8 connections x 16 streams),
# latency at a fixed 1,000 rps (h2load --h1 --rps with a per-request log). Per proxy process: CPU seconds per
# 10,000 requests and RSS under load, from /proc; syscalls and context switches per request from perf stat.
# Usage: loadtests/scenarios/peers.sh [ROUNDS] [DURATION_S]
# Writes loadtests/results/latest.json and loadtests/results/latest.md (latest-cpu-limit.* under MESHGUARD_BENCH_CPU).
# MESHGUARD_BENCH_CONFIGS picks configurations (default: all); MESHGUARD_WARMUP_S the warm-up (default 10).
# MESHGUARD_BENCH_CPU=N: every proxy process (an nginx with its workers) held to N cores' worth by a CPU quota, as
# a pod's CPU limit holds a sidecar; each starts inside its group, so that it sees the limit as in a pod (limited in
# lib.sh); the report says so.
# MESHGUARD_PERF_DIR=DIR: after the warm-up, record a perf profile of each proxy under load into DIR
# (.NET code symbolized through perf maps), then stop: `perf report -i DIR/<config>-<n>.data`. Frame-pointer call graphs
# by default; MESHGUARD_PERF_CALLGRAPH="--call-graph dwarf,16384" unwinds through the NativeAOT sidecar's leaf frames too
# (build it with -p:StripSymbols=false to see its symbols).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN="$ROOT/out/bin"
ROUNDS=${1:-3}
DURATION=${2:-10}
WARMUP=${MESHGUARD_WARMUP_S:-10}
CONNECTIONS=32
CONFIGS=(${MESHGUARD_BENCH_CONFIGS:-direct yarp nginx haproxy meshguard meshguard-aot meshguard-aot-noflow})
for tool in wrk h2load nginx haproxy openssl curl python3; do
  command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install wrk nghttp2-client nginx haproxy openssl curl python3" >&2; exit 2; }
done
[ -x "$BIN/meshguard-proxy" ] || ./meshguard.sh build
YARP="$ROOT/out/loadtests/plain-yarp"
if [ ! -x "$YARP" ] || [ -n "$(find loadtests/MeshGuard.PlainYarp -newer "$YARP" -name '*.cs' -print -quit)" ]; then
  dotnet publish loadtests/MeshGuard.PlainYarp -c Release -r linux-x64 --self-contained false \
    -p:PublishSingleFile=true -p:DebugType=none -o "$ROOT/out/loadtests" --nologo -v quiet
fi

if [ -n "${MESHGUARD_PERF_DIR:-}" ]; then
  mkdir -p "$MESHGUARD_PERF_DIR"
  export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
fi
AOT_PROXY="$ROOT/out/aot/meshguard-proxy"
if [[ " ${CONFIGS[*]} " == *" meshguard-aot"* ]] && { [ ! -x "$AOT_PROXY" ] || [ "$BIN/meshguard-proxy" -nt "$AOT_PROXY" ]; }; then
  ./meshguard.sh build-aot
fi
WORK=$(mktemp -d /tmp/meshguard-peers.XXXXXX)
# shellcheck source=loadtests/scenarios/lib.sh
. "$ROOT/loadtests/scenarios/lib.sh"
wait_url() { wait_http "$1" -H "Host: orders"; }
# A process and its children (nginx workers).
with_children() { echo "$1"; pgrep -P "$1" || true; }
rss_mb() { local kb=0 pid; for pid in "$@"; do kb=$((kb + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0))); done; python3 -c "print(round($kb / 1024, 1))"; }

start_backend() {
  BACKEND_PORT=$(free_port); BACKEND_H2=$(free_port)
  mkdir -p "$WORK/backend/www"
  head -c 1048576 /dev/urandom > "$WORK/backend/www/big.bin"
  chmod 755 "$WORK" "$WORK/backend" "$WORK/backend/www"; chmod 644 "$WORK/backend/www/big.bin"  # nginx workers run as nobody
  # /big.bin: 1 MiB down; /upload: 1 MiB up (read and dropped), "ok" back; everything else: a small body.
  nginx_conf "$WORK/backend" "server { listen 127.0.0.1:$BACKEND_PORT; listen 127.0.0.1:$BACKEND_H2 http2;
    location / { return 200 'ok\n'; }
    location = /big.bin { root $WORK/backend/www; }
    location = /upload { client_max_body_size 2m; client_body_buffer_size 2m; return 200 'ok\n'; } }"
  start_nginx "$WORK/backend"
  wait_url "http://127.0.0.1:$BACKEND_PORT/"
}

# Each start_<config> sets URL (what the client calls), H2URL (the same for a cleartext HTTP/2 client), PAIR
# (the pids of the two proxies, "a b") and, for the .NET proxies, ALLOC (URLs answering the bytes each has
# allocated: bytes per request is their growth).
start_direct() { URL="http://127.0.0.1:$BACKEND_PORT/orders/1"; H2URL="http://127.0.0.1:$BACKEND_H2/orders/1"; PAIR=""; ALLOC=""; }

start_yarp() {
  local in out h2 s_in s_out d="$WORK/pki"; in=$(free_port); out=$(free_port); h2=$(free_port); s_in=$(free_port); s_out=$(free_port)
  limited yarp-in "$YARP" inbound --port "$in" --upstream "http://127.0.0.1:$BACKEND_PORT" --cert "$d/server.pem" --key "$d/server.key" --ca "$d/ca.pem" --stats-port "$s_in" & PIDS+=($!); local a=$!
  limited yarp-out "$YARP" outbound --port "$out" --upstream "https://127.0.0.1:$in" --cert "$d/client.pem" --key "$d/client.key" --ca "$d/ca.pem" --stats-port "$s_out" --h2c-port "$h2" & PIDS+=($!); local b=$!
  URL="http://127.0.0.1:$out/orders/1"; H2URL="http://127.0.0.1:$h2/orders/1"; PAIR="$a $b"; ALLOC="http://127.0.0.1:$s_in/ http://127.0.0.1:$s_out/"
}

start_nginx_pair() {
  local in out h2 d="$WORK/pki"; in=$(free_port); out=$(free_port); h2=$(free_port)
  nginx_conf "$WORK/nginx-in" "upstream app { server 127.0.0.1:$BACKEND_PORT; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$in ssl; ssl_protocols TLSv1.3; ssl_certificate $d/server.pem; ssl_certificate_key $d/server.key;
    ssl_client_certificate $d/ca.pem; ssl_verify_client on;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  nginx_conf "$WORK/nginx-out" "upstream mesh { server 127.0.0.1:$in; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$out; listen 127.0.0.1:$h2 http2;
    location / { proxy_pass https://mesh; proxy_http_version 1.1; proxy_set_header Connection \"\";
      proxy_ssl_protocols TLSv1.3; proxy_ssl_certificate $d/client.pem; proxy_ssl_certificate_key $d/client.key;
      proxy_ssl_verify on; proxy_ssl_trusted_certificate $d/ca.pem; proxy_ssl_name localhost; proxy_ssl_session_reuse on; } }"
  start_nginx "$WORK/nginx-in" limited nginx-in; local a=$LAST_PID
  start_nginx "$WORK/nginx-out" limited nginx-out; local b=$LAST_PID
  URL="http://127.0.0.1:$out/orders/1"; H2URL="http://127.0.0.1:$h2/orders/1"; PAIR="$a $b"; ALLOC=""
}

start_haproxy() {
  local in out h2 d="$WORK/pki"; in=$(free_port); out=$(free_port); h2=$(free_port)
  mkdir -p "$WORK/haproxy"
  printf '%s\nfrontend in\n  bind 127.0.0.1:%s ssl crt %s ca-file %s verify required alpn h2,http/1.1 ssl-min-ver TLSv1.3\n  default_backend app\nbackend app\n  server app 127.0.0.1:%s\n' \
    "$HAPROXY_COMMON" "$in" "$d/server.bundle.pem" "$d/ca.pem" "$BACKEND_PORT" > "$WORK/haproxy/in.cfg"
  printf '%s\nfrontend out\n  bind 127.0.0.1:%s\n  bind 127.0.0.1:%s proto h2\n  default_backend mesh\nbackend mesh\n  server in 127.0.0.1:%s ssl crt %s ca-file %s verify required alpn h2 sni str(localhost) ssl-min-ver TLSv1.3\n' \
    "$HAPROXY_COMMON" "$out" "$h2" "$in" "$d/client.bundle.pem" "$d/ca.pem" > "$WORK/haproxy/out.cfg"
  limited haproxy-in haproxy -db -f "$WORK/haproxy/in.cfg" >"$WORK/haproxy/in.log" 2>&1 & PIDS+=($!); local a=$!
  limited haproxy-out haproxy -db -f "$WORK/haproxy/out.cfg" >"$WORK/haproxy/out.log" 2>&1 & PIDS+=($!); local b=$!
  URL="http://127.0.0.1:$out/orders/1"; H2URL="http://127.0.0.1:$h2/orders/1"; PAIR="$a $b"; ALLOC=""
}

start_meshguard_aot() { start_meshguard "$AOT_PROXY" meshguard-aot; }
start_meshguard_aot_noflow() { start_meshguard "$AOT_PROXY" meshguard-aot-noflow off; }

start_meshguard() { # [PROXY_BINARY] [NAME] [FLOWS: on|off]
  local proxy=${1:-$BIN/meshguard-proxy} name=${2:-meshguard} flows=${3:-on}
  mkdir -p "$WORK/$name/cp/policies"
  cat > "$WORK/$name/cp/policies/orders.yaml" <<'EOF'
apiVersion: meshguard.io/v1alpha1
kind: AccessPolicy
metadata: { name: orders-callers, namespace: shop }
spec:
  selector: { serviceAccount: orders }
  action: allow
  rules:
    - name: frontend-reads-orders
      from:
        - identity: spiffe://mesh.local/ns/shop/sa/frontend
      to:
        - methods: [GET]
          paths: ["/orders/*", "/big.bin"]
        - methods: [POST]
          paths: ["/upload"]
EOF
  # The backend port is HTTP/1.1 only, and the other pairs speak HTTP/1.1 to it whatever the client spoke.
  MESH_APP_PROTOCOL=http1 start_mesh_pair "$WORK/$name" "$BACKEND_PORT" "$proxy" "$flows"
  # One outbound port takes both: the sidecar tells HTTP/2's preface from HTTP/1.1.
  URL=$MESH_URL; H2URL=$MESH_URL; PAIR=$MESH_SIDECARS; ALLOC=$MESH_METRICS
}

PROXY_CPUS=${MESHGUARD_BENCH_CPU:-} # every proxy, not the backend or the control plane (limited in lib.sh)
pki
start_backend
for config in "${CONFIGS[@]}"; do
  case "$config" in
    nginx) start_nginx_pair ;;
    *) "start_${config//-/_}" ;;
  esac
  wait_url "$URL"
  printf -v "URL_${config//-/_}" '%s' "$URL"
  printf -v "H2URL_${config//-/_}" '%s' "$H2URL"
  printf -v "PAIR_${config//-/_}" '%s' "$PAIR"
  printf -v "ALLOC_${config//-/_}" '%s' "$ALLOC"
  echo "started $config: $URL (proxies: ${PAIR:-none})" >&2
done

# The pids of a configuration's proxies, children included.
pair_pids() { local var="PAIR_${1//-/_}" pid; for pid in ${!var}; do with_children "$pid"; done; }
url_of() { local var="URL_${1//-/_}"; echo "${!var}"; }
h2url_of() { local var="H2URL_${1//-/_}"; echo "${!var}"; }
# Bytes the pair's .NET processes have allocated so far (empty for native proxies).
allocated() {
  local var="ALLOC_${1//-/_}" url total=0 n
  [ -n "${!var}" ] || return 0
  for url in ${!var}; do
    # /metrics carries it as a Prometheus line; the YARP peer's stats port answers the bare number.
    n=$(curl -sf "$url" | awk '/^dotnet_gc_allocated_bytes_total / {print $2; next} /^[0-9]+$/ {print $1}')
    total=$((total + n))
  done
  echo "$total"
}

echo "warm-up: ${WARMUP} s each" >&2
for config in "${CONFIGS[@]}"; do
  wrk -t2 -c"$CONNECTIONS" -d"${WARMUP}s" -H "Host: orders" "$(url_of "$config")" >/dev/null
done

if [ -n "${MESHGUARD_PERF_DIR:-}" ]; then
  for config in "${CONFIGS[@]}"; do
    pair_var="PAIR_${config//-/_}"; n=0; perfs=()
    for pid in ${!pair_var}; do
      n=$((n + 1))
      perf record -F 499 ${MESHGUARD_PERF_CALLGRAPH:--g} -p "$pid" -o "$MESHGUARD_PERF_DIR/$config-$n.data" -- sleep "$DURATION" >/dev/null 2>&1 & perfs+=($!)
    done
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -H "Host: orders" "$(url_of "$config")" | grep Requests/sec | sed "s/^/$config /" >&2
    for pid in "${perfs[@]}"; do wait "$pid" || true; done
  done
  echo "profiles in $MESHGUARD_PERF_DIR" >&2
  exit 0
fi

R="$WORK/results"; mkdir -p "$R"
BODY_S=$(( DURATION < 5 ? DURATION : 5 ))
printf 'wrk.method = "POST"\nwrk.body = string.rep("m", 1048576)\nwrk.headers["Content-Type"] = "application/octet-stream"\n' > "$WORK/upload.lua"
for round in $(seq 1 "$ROUNDS"); do
  for config in "${CONFIGS[@]}"; do
    # shellcheck disable=SC2046
    before=$(cpu_seconds $(pair_pids "$config"))
    alloc_before=$(allocated "$config")
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -H "Host: orders" "$(url_of "$config")" > "$R/wrk-$config-$round.txt"
    # shellcheck disable=SC2046
    after=$(cpu_seconds $(pair_pids "$config"))
    requests=$(awk '/requests in/ {print $1}' "$R/wrk-$config-$round.txt")
    awk '/Requests\/sec/ {print $2}' "$R/wrk-$config-$round.txt" >> "$R/rps-$config"
    python3 -c "print(($after - $before) / max($requests, 1) * 10000 / 2)" >> "$R/cpu-$config"
    if [ -n "$alloc_before" ]; then
      alloc_after=$(allocated "$config")
      python3 -c "print(($alloc_after - $alloc_before) / max($requests, 1) / 2)" >> "$R/alloc-$config"
    fi
    # Under load just now: the larger of the pair.
    rss=0 pair_var="PAIR_${config//-/_}"
    for pid in ${!pair_var}; do
      # shellcheck disable=SC2046
      r=$(rss_mb $(with_children "$pid")); rss=$(python3 -c "print(max($rss, $r))")
    done
    echo "$rss" >> "$R/rss-$config"
    echo "round $round $config: $(tail -1 "$R/rps-$config") rps" >&2
  done
  for config in "${CONFIGS[@]}"; do
    # 1 MiB bodies each way, 8 connections: MiB/s of bodies.
    base=$(url_of "$config"); base=${base%/orders/1}
    wrk -t2 -c8 -d"${BODY_S}s" -H "Host: orders" "$base/big.bin" > "$R/down-$config-$round.txt"
    wrk -t2 -c8 -d"${BODY_S}s" -H "Host: orders" -s "$WORK/upload.lua" "$base/upload" > "$R/up-$config-$round.txt"
    for way in down up; do
      awk '/requests in/ {print $1}' "$R/$way-$config-$round.txt" | python3 -c "import sys; print(int(sys.stdin.read() or 0) / $BODY_S)" >> "$R/$way-$config"
      grep -E "Non-2xx|Socket errors" "$R/$way-$config-$round.txt" | sed "s/^/$config $way: /" >&2 || true
    done
  done
  for config in "${CONFIGS[@]}"; do
    # HTTP/2 from the client (cleartext, prior knowledge): 8 connections, 16 streams each.
    timeout $((BODY_S + 30)) h2load -t2 -c8 -m16 -D "$BODY_S" -H ":authority: orders" "$(h2url_of "$config")" > "$R/h2-$config-$round.txt" 2>&1 || true
    awk '/^finished in/ {gsub(",", "", $4); print $4}' "$R/h2-$config-$round.txt" >> "$R/h2-$config"
    grep -E "^requests:" "$R/h2-$config-$round.txt" | grep -v " 0 failed" | sed "s/^/$config h2: /" >&2 || true
    # Which answers failed, when some did: the status classes say whether a proxy refused or the peer broke.
    if ! grep -qE "^requests:.* 0 failed" "$R/h2-$config-$round.txt"; then
      grep -E "^status codes:" "$R/h2-$config-$round.txt" | sed "s/^/$config h2: /" >&2 || true
    fi
  done
  for config in "${CONFIGS[@]}"; do
    # Latency at a fixed 1,000 rps: 10 connections at 100 rps each, every request's time logged.
    timeout $((DURATION + 30)) h2load --h1 -c 10 --rps 100 -D "$DURATION" -H ":authority: orders" --log-file "$R/lat-$config-$round.tsv" "$(url_of "$config")" > "$R/h2load-$config-$round.txt" 2>&1 || true
  done
done

# Syscalls and context switches per request, per proxy: one more maximum-throughput run per configuration with
# perf counting the pair's syscall tracepoints (counting only, no sampling). Threads a proxy starts during the run
# are not counted, hence after the rounds: every pool is warm by then. Skipped where perf cannot attach.
SYSCALLS="read write readv writev sendto recvfrom sendmsg recvmsg epoll_wait epoll_pwait epoll_ctl futex sched_yield io_uring_enter madvise mprotect"
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
  events="raw_syscalls:sys_enter,context-switches,cpu-migrations"
  for sc in $SYSCALLS; do events="$events,syscalls:sys_enter_$sc"; done
  for config in "${CONFIGS[@]}"; do
    [ "$config" = direct ] && continue
    # shellcheck disable=SC2046
    pids=$(pair_pids "$config" | paste -sd,)
    perf stat -x, -e "$events" -p "$pids" -o "$R/perf-$config.csv" -- sleep "$DURATION" >/dev/null 2>&1 & perf_pid=$!
    sleep 0.2
    wrk -t2 -c"$CONNECTIONS" -d"$((DURATION - 1))s" -H "Host: orders" "$(url_of "$config")" > "$R/wrk-perf-$config.txt"
    wait "$perf_pid" || true
    awk '/requests in/ {print $1}' "$R/wrk-perf-$config.txt" > "$R/perf-requests-$config"
  done
fi

# Peak RSS through the whole run (the kernel's high-water mark, VmHWM): every scenario, the 1 MiB bodies and the
# HTTP/2 client's 128 streams included; an nginx counts its master and workers together.
for config in "${CONFIGS[@]}"; do
  [ "$config" = direct ] && continue
  peak=0 pair_var="PAIR_${config//-/_}"
  for pid in ${!pair_var}; do
    kb=0
    for p in $(with_children "$pid"); do kb=$((kb + $(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done
    peak=$(python3 -c "print(max($peak, round($kb / 1024, 1)))")
  done
  echo "$peak" > "$R/peak-rss-$config"
done

MACHINE="$(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME")"
mkdir -p loadtests/results
python3 - "$R" "$MACHINE" "$ROUNDS" "$DURATION" "$WORK" "${MESHGUARD_BENCH_CPU:-}" "${CONFIGS[@]}" <<'EOF'
import json, statistics, sys, os, glob, datetime
results, machine, rounds, duration, work, cpu_limit, configs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7:]
def numbers(name):
    path = os.path.join(results, name)
    return [float(x) for x in open(path).read().split()] if os.path.exists(path) else []
def pct(values, p):
    if not values: return None
    values = sorted(values); k = (len(values) - 1) * p / 100
    lo = int(k); hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)
out = {"machine": machine, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
       "method": f"wrk -t2 -c32, {rounds} interleaved rounds of {duration} s after the same warm-up; HTTP/2 client: h2load -c8 -m16 (cleartext, prior knowledge); latency: h2load --h1 -c10 --rps 100 (1,000 rps) for {duration} s per round; medians over rounds",
       "cpu_limit_per_proxy": float(cpu_limit) if cpu_limit else None,
       "configs": {}}
if cpu_limit: out["method"] += f"; each proxy held to {cpu_limit} CPU by a quota"
for c in configs:
    entry = {}
    rps = numbers(f"rps-{c}")
    entry["max_rps"] = round(statistics.median(rps)) if rps else None
    entry["max_rps_rounds"] = [round(x) for x in rps]
    p50s, p99s, p999s, failed = [], [], [], 0
    for f in sorted(glob.glob(os.path.join(results, f"lat-{c}-*.tsv"))):
        lat = []
        for line in open(f):
            parts = line.split()
            if len(parts) >= 3:
                if parts[1] != "200": failed += 1
                lat.append(int(parts[2]) / 1000.0)
        if lat:
            p50s.append(pct(lat, 50)); p99s.append(pct(lat, 99)); p999s.append(pct(lat, 99.9))
    for key, values in (("p50_ms", p50s), ("p99_ms", p99s), ("p999_ms", p999s)):
        entry[key] = round(statistics.median(values), 3) if values else None
    entry["latency_non_200"] = failed
    down, up = numbers(f"down-{c}"), numbers(f"up-{c}")
    # 1 MiB per request: requests/s is MiB/s; the issue's figure is the mean of both directions.
    if down and up:
        entry["mb_per_s_down"] = round(statistics.median(down), 1)
        entry["mb_per_s_up"] = round(statistics.median(up), 1)
        entry["mb_per_s"] = round((entry["mb_per_s_down"] + entry["mb_per_s_up"]) / 2, 1)
    h2 = numbers(f"h2-{c}")
    if h2: entry["h2_client_rps"] = round(statistics.median(h2))
    if c != "direct":
        cpu, rss = numbers(f"cpu-{c}"), numbers(f"rss-{c}")
        entry["cpu_s_per_10k"] = round(statistics.median(cpu), 4) if cpu else None
        entry["rss_mb"] = round(max(rss), 1) if rss else None
        peak = numbers(f"peak-rss-{c}")
        if peak: entry["peak_rss_mb"] = peak[0]
        alloc = numbers(f"alloc-{c}")
        if alloc: entry["alloc_bytes_per_request"] = round(statistics.median(alloc))
        perf_csv, perf_req = os.path.join(results, f"perf-{c}.csv"), numbers(f"perf-requests-{c}")
        if os.path.exists(perf_csv) and perf_req and perf_req[0] > 0:
            # perf stat -x, lines: value,unit,event,...; per request per proxy (the pair counted together, halved).
            per = lambda v: round(v / perf_req[0] / 2, 2)
            counts = {}
            for line in open(perf_csv):
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[0].replace(".", "").isdigit():
                    counts[parts[2]] = float(parts[0])
            if "raw_syscalls:sys_enter" in counts:
                entry["syscalls_per_request"] = per(counts["raw_syscalls:sys_enter"])
                entry["context_switches_per_request"] = per(counts.get("context-switches", 0))
                entry["syscalls_per_request_by_name"] = {k.split("sys_enter_", 1)[1]: per(v) for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if k.startswith("syscalls:") and v > 0}
    # Start to ready (SVID and config in hand): the second sidecar, whose control plane had already served one
    # (a control plane's own first-request warm-up is not the sidecar's start); the first one beside it.
    ready = numbers(f"../{c}/ready-ms")
    if len(ready) >= 2: entry["ready_ms"], entry["ready_ms_first_on_new_control_plane"] = round(ready[1]), round(ready[0])
    out["configs"][c] = entry
# A run under a CPU limit is reported beside the unlimited one, not over it.
report = "loadtests/results/latest" + ("-cpu-limit" if cpu_limit else "")
json.dump(out, open(report + ".json", "w"), indent=2)
direct = out["configs"].get("direct", {})
peers = [c for c in configs if c not in ("direct",) and not c.startswith("meshguard")]
lines = [f"# MeshGuard beside its peers ({out['date'][:10]})", "",
         f"Machine: {machine}. {out['method']}.", "",
         "client -> outbound proxy -> mTLS -> inbound proxy -> backend (nginx, small body), all on loopback. "
         "CPU is per proxy process (mean of the pair); RSS the larger of the pair, after the maximum-throughput run; "
         "peak RSS the larger of the pair's high-water marks over the whole run; "
         "added p99 is over direct at the same fixed rate; ready ms: sidecar start to SVID and config in hand, against a "
         "control plane that has served one sidecar before (first: the one it served first)."
         + (" meshguard-aot-noflow: the NativeAOT pair with flow logs off, the data path alone (the plain proxies here write no"
            " access log); the targets are for flow logs on." if "meshguard-aot-noflow" in configs else ""), "",
         "| config | max rps | vs direct | p50 ms | p99 ms | p99.9 ms | added p99 ms | 1 MiB down MiB/s | 1 MiB up MiB/s | h2 client rps | CPU-s/10k per proxy | RSS MB | peak RSS MB | alloc B/req per proxy | syscalls/req per proxy | ctx switches/req per proxy | ready ms |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
def ready_cell(e):
    if "ready_ms" not in e: return ""
    return f"{e['ready_ms']} (first: {e['ready_ms_first_on_new_control_plane']})"
def fmt(v, nd=2): return "" if v is None else (f"{v:,.0f}" if nd == 0 else f"{v:.{nd}f}")
for c in configs:
    e = out["configs"][c]
    vs = e["max_rps"] / direct["max_rps"] * 100 if direct.get("max_rps") and e["max_rps"] else None
    added = e["p99_ms"] - direct["p99_ms"] if direct.get("p99_ms") is not None and e["p99_ms"] is not None else None
    lines.append(f"| {c} | {fmt(e['max_rps'],0)} | {fmt(vs,1)}% | {fmt(e['p50_ms'])} | {fmt(e['p99_ms'])} | {fmt(e['p999_ms'])} | {fmt(added)} | {fmt(e.get('mb_per_s_down'),0)} | {fmt(e.get('mb_per_s_up'),0)} | {fmt(e.get('h2_client_rps'),0)} | {fmt(e.get('cpu_s_per_10k'),3)} | {fmt(e.get('rss_mb'),1)} | {fmt(e.get('peak_rss_mb'),1)} | {fmt(e.get('alloc_bytes_per_request'),0)} | {fmt(e.get('syscalls_per_request'))} | {fmt(e.get('context_switches_per_request'))} | {ready_cell(e)} |")
mesh = [c for c in configs if c.startswith("meshguard")]
if mesh and peers:
    lines += ["", "MeshGuard against each peer (throughput ratio; CPU per request ratio, lower is better):", ""]
    for m in mesh:
        for p in peers:
            a, b = out["configs"][m], out["configs"][p]
            if a["max_rps"] and b["max_rps"]:
                cpu = f"{a['cpu_s_per_10k'] / b['cpu_s_per_10k']:.2f}x" if a.get("cpu_s_per_10k") and b.get("cpu_s_per_10k") else "n/a"
                lines.append(f"- {m} / {p}: throughput {a['max_rps'] / b['max_rps']:.2f}x, CPU per request {cpu}")
by_name = [c for c in configs if out["configs"][c].get("syscalls_per_request_by_name")]
if by_name:
    lines += ["", "Syscalls per request per proxy, by name (perf stat on the syscall tracepoints during one more maximum-throughput run):", ""]
    for c in by_name:
        names = out["configs"][c]["syscalls_per_request_by_name"]
        lines.append(f"- {c}: " + ", ".join(f"{k} {v:.2f}" for k, v in names.items()))
open(report + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
