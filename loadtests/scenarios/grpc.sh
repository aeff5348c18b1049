#!/usr/bin/env bash
# gRPC unary calls per second through a MeshGuard sidecar pair beside direct, on loopback:
#   direct          h2load -> grpc-backend (Grpc.AspNetCore, cleartext HTTP/2)
#   haproxy         h2load -> HAProxy (h2c) -> HTTP/2 over mTLS -> HAProxy -> grpc-backend (h2c): the peer to beat
#   meshguard       h2load -> frontend's outbound port (h2c) -> mTLS -> orders' sidecar -> grpc-backend (h2c)
#   meshguard-aot   the same with the NativeAOT sidecar
# Each call is meshtest.Echo/Unary with a 7-byte message (h2load posting a length-prefixed protobuf body with
# content-type application/grpc and te: trailers), 8 connections x 16 streams. h2load counts HTTP statuses
# only, so before and after the rounds a real gRPC client (python3-grpcio) makes a call through each
# configuration and must get the echo back with status OK. Policy and flow logs as in production: a policy
# allows exactly this method, every call is recorded.
# Usage: loadtests/scenarios/grpc.sh [ROUNDS] [DURATION_S]; writes loadtests/results/grpc.json and grpc.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN="$ROOT/out/bin"
ROUNDS=${1:-3}
DURATION=${2:-10}
CONFIGS=(${MESHGUARD_BENCH_CONFIGS:-direct haproxy meshguard meshguard-aot})
WORK=$(mktemp -d)
source loadtests/scenarios/lib.sh
for tool in h2load curl python3 haproxy openssl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install nghttp2-client curl python3-grpcio haproxy openssl" >&2; exit 2; }
done
/usr/bin/python3 -c 'import grpc' 2>/dev/null || { echo "python3-grpcio is needed: apt-get install python3-grpcio" >&2; exit 2; }
[ -x "$BIN/meshguard-proxy" ] || ./meshguard.sh build
# The NativeAOT sidecar is built again when it is older than the JIT build, as peers.sh does: a stale one would be
# measured as if it were this code.
AOT_PROXY="$ROOT/out/aot/meshguard-proxy"
if [[ " ${CONFIGS[*]} " == *" meshguard-aot "* ]] && { [ ! -x "$AOT_PROXY" ] || [ "$BIN/meshguard-proxy" -nt "$AOT_PROXY" ]; }; then
  ./meshguard.sh build-aot
fi
BACKEND_BIN="$ROOT/out/loadtests/grpc-backend"
if [ ! -x "$BACKEND_BIN" ] || [ -n "$(find loadtests/MeshGuard.GrpcBackend -newer "$BACKEND_BIN" -name '*.cs' -print -quit)" ]; then
  dotnet publish loadtests/MeshGuard.GrpcBackend -c Release -r linux-x64 --self-contained false \
    -p:PublishSingleFile=true -p:DebugType=none -o "$ROOT/out/loadtests" --nologo -v quiet
fi

# One unary call with a real gRPC client: prints the reply text, fails on any status but OK.
grpc_call() { # HOST:PORT AUTHORITY
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1], options=[("grpc.default_authority", sys.argv[2])])
call = channel.unary_unary("/meshtest.Echo/Unary")
reply = call(b"\x0a\x05hello", timeout=10)
assert reply == b"\x0a\x05hello", reply
print("OK")
PY
}

BACKEND_PORT=$(free_port)
"$BACKEND_BIN" --port "$BACKEND_PORT" >"$WORK/backend.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 100); do grpc_call "127.0.0.1:$BACKEND_PORT" orders >/dev/null 2>&1 && break; sleep 0.1; done
printf '\x00\x00\x00\x00\x07\x0a\x05hello' > "$WORK/call.bin"

start_meshguard() { # NAME PROXY_BINARY
  mkdir -p "$WORK/$1/cp/policies"
  cat > "$WORK/$1/cp/policies/echo.yaml" <<'YAML'
apiVersion: meshguard.io/v1alpha1
kind: AccessPolicy
metadata: { name: echo-callers, namespace: shop }
spec:
  selector: { serviceAccount: orders }
  action: allow
  rules:
    - name: frontend-unary
      from: [ { identity: spiffe://mesh.local/ns/shop/sa/frontend } ]
      to: [ { methods: [POST], paths: ["/meshtest.Echo/Unary"] } ]
YAML
  MESH_NO_WAIT=1 start_mesh_pair "$WORK/$1" "$BACKEND_PORT" "$2" on
  local out=${MESH_URL#http://}; out=${out%%/*}
  for _ in $(seq 1 100); do grpc_call "$out" orders >/dev/null 2>&1 && break; sleep 0.1; done
  printf -v "TARGET_${1//-/_}" '%s' "$out"
  printf -v "PAIR_${1//-/_}" '%s' "$MESH_SIDECARS"
}
# Two HAProxy, HTTP/2 end to end: h2c from the client and to the backend, h2 over TLS 1.3 with client
# certificates between them, connections reused (http-reuse always), as in the peer comparison.
start_haproxy() {
  pki
  local in out d="$WORK/pki"; in=$(free_port); out=$(free_port)
  mkdir -p "$WORK/haproxy"
  printf '%s\nfrontend in\n  bind 127.0.0.1:%s ssl crt %s ca-file %s verify required alpn h2 ssl-min-ver TLSv1.3\n  default_backend app\nbackend app\n  server app 127.0.0.1:%s proto h2\n' \
    "$HAPROXY_COMMON" "$in" "$d/server.bundle.pem" "$d/ca.pem" "$BACKEND_PORT" > "$WORK/haproxy/in.cfg"
  printf '%s\nfrontend out\n  bind 127.0.0.1:%s proto h2\n  default_backend mesh\nbackend mesh\n  server in 127.0.0.1:%s ssl crt %s ca-file %s verify required alpn h2 sni str(localhost) ssl-min-ver TLSv1.3\n' \
    "$HAPROXY_COMMON" "$out" "$in" "$d/client.bundle.pem" "$d/ca.pem" > "$WORK/haproxy/out.cfg"
  haproxy -db -f "$WORK/haproxy/in.cfg" >"$WORK/haproxy/in.log" 2>&1 & PIDS+=($!); local a=$!
  haproxy -db -f "$WORK/haproxy/out.cfg" >"$WORK/haproxy/out.log" 2>&1 & PIDS+=($!); local b=$!
  for _ in $(seq 1 100); do grpc_call "127.0.0.1:$out" orders >/dev/null 2>&1 && break; sleep 0.1; done
  TARGET_haproxy="127.0.0.1:$out"; PAIR_haproxy="$a $b"
}
for config in "${CONFIGS[@]}"; do
  case "$config" in
    direct) TARGET_direct="127.0.0.1:$BACKEND_PORT"; PAIR_direct="" ;;
    haproxy) start_haproxy ;;
    meshguard) start_meshguard meshguard "$BIN/meshguard-proxy" ;;
    meshguard-aot) start_meshguard meshguard-aot "$AOT_PROXY" ;;
  esac
done
target_of() { local var="TARGET_${1//-/_}"; echo "${!var}"; }
pair_of() { local var="PAIR_${1//-/_}"; echo "${!var}"; }
check_all() {
  for config in "${CONFIGS[@]}"; do
    grpc_call "$(target_of "$config")" orders >/dev/null || { echo "$config: a real gRPC call failed" >&2; exit 1; }
  done
}

check_all
R="$WORK/results"; mkdir -p "$R"
calls() { # CONFIG SECONDS OUT
  timeout $(($2 + 30)) h2load -t2 -c8 -m16 -D "$2" -d "$WORK/call.bin" -H "content-type: application/grpc" -H "te: trailers" \
    -H ":authority: orders" "http://$(target_of "$1")/meshtest.Echo/Unary" > "$3" 2>&1 || true
}
for config in "${CONFIGS[@]}"; do calls "$config" 5 /dev/null; done   # warm-up
for round in $(seq 1 "$ROUNDS"); do
  for config in "${CONFIGS[@]}"; do
    # shellcheck disable=SC2046
    before=$(cpu_seconds $(pair_of "$config"))
    calls "$config" "$DURATION" "$R/$config-$round.txt"
    # shellcheck disable=SC2046
    after=$(cpu_seconds $(pair_of "$config"))
    rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$R/$config-$round.txt")
    echo "${rps:-0}" >> "$R/rps-$config"
    grep -o '[0-9]* failed' "$R/$config-$round.txt" | awk '{print $1}' >> "$R/failed-$config"
    python3 -c "print(($after - $before) / max(${rps:-0} * $DURATION, 1) * 10000 / 2)" >> "$R/cpu-$config"
    echo "round $round $config: ${rps:-0} calls/s" >&2
  done
done
check_all

MACHINE="$(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(. /etc/os-release && echo "$PRETTY_NAME")"
mkdir -p loadtests/results
python3 - "$R" "$MACHINE" "$ROUNDS" "$DURATION" "${CONFIGS[@]}" <<'PY'
import json, statistics, sys, os, datetime
results, machine, rounds, duration, configs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
def numbers(name):
    path = os.path.join(results, name)
    return [float(x) for x in open(path).read().split() if x.replace('.', '', 1).isdigit()] if os.path.exists(path) else []
out = {"date": datetime.date.today().isoformat(), "machine": machine,
       "method": f"h2load -t2 -c8 -m16 -D {duration}, meshtest.Echo/Unary with a 7-byte message; {rounds} interleaved rounds, medians; CPU-s per 10k calls per sidecar",
       "configs": {}}
direct = None
haproxy = None
for c in configs:
    rps = numbers(f"rps-{c}")
    entry = {"calls_per_s": round(statistics.median(rps)) if rps else None,
             "failed": int(sum(numbers(f"failed-{c}")))}
    cpu = numbers(f"cpu-{c}")
    if c != "direct" and cpu:
        entry["cpu_s_per_10k"] = round(statistics.median(cpu), 3)
    if c == "direct":
        direct = entry["calls_per_s"]
    if c == "haproxy":
        haproxy = entry
    out["configs"][c] = entry
for c, e in out["configs"].items():
    if direct and e["calls_per_s"]:
        e["vs_direct"] = round(e["calls_per_s"] / direct, 3)
    if haproxy and haproxy["calls_per_s"] and e["calls_per_s"] and c != "direct":
        e["vs_haproxy"] = round(e["calls_per_s"] / haproxy["calls_per_s"], 3)
        if e.get("cpu_s_per_10k") and haproxy.get("cpu_s_per_10k"):
            e["cpu_vs_haproxy"] = round(e["cpu_s_per_10k"] / haproxy["cpu_s_per_10k"], 2)
json.dump(out, open("loadtests/results/grpc.json", "w"), indent=2)
lines = [f"# gRPC unary calls through the pair ({out['date']}, `./meshguard.sh bench grpc`)", "", f"Machine: {machine}. {out['method']}.", "",
         "| config | calls/s | vs direct | vs HAProxy pair | failed | CPU-s/10k per proxy | CPU vs HAProxy |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
for c, e in out["configs"].items():
    vs_haproxy = f"{e['vs_haproxy']:.2f}x" if "vs_haproxy" in e else ""
    cpu_vs = f"{e['cpu_vs_haproxy']:.2f}x" if "cpu_vs_haproxy" in e else ""
    lines.append(f"| {c} | {e['calls_per_s']:,} | {e.get('vs_direct', 1.0):.2f}x | {vs_haproxy} | {e['failed']} | {e.get('cpu_s_per_10k', '')} | {cpu_vs} |")
open("loadtests/results/grpc.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
