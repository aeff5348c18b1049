#!/usr/bin/env bash
# What transparent redirect costs, in real network namespaces (as root): two pods on a bridge, the control
# plane on the node, the NativeAOT sidecar as uid 1337 in each pod, nginx as the orders app, wrk as uid 1000 in
# the frontend pod. Configurations, interleaved round by round:
#   direct       wrk -> orders pod's nginx, plain, on a port both pods' rules leave alone (the floor)
#   explicit     wrk -> frontend sidecar at 127.0.0.1:15001 (Host: orders) -> mTLS -> orders sidecar -> nginx
#   transparent  wrk -> 10.77.0.2:8080 as the app would call it; the pod's nat rules bring it to 15001, whose
#                SO_ORIGINAL_DST names the orders pod -> the same mTLS path
# Per configuration: requests/s (median of the rounds), latency p50/p99 (wrk --latency, of the median round),
# and the frontend sidecar's CPU seconds per 10,000 requests.
# Usage: sudo loadtests/scenarios/redirect.sh [ROUNDS] [DURATION_S]   Writes loadtests/results/redirect.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN="$ROOT/out/bin"
PROXY=${MESHGUARD_PROXY:-$ROOT/out/aot/meshguard-proxy}
ROUNDS=${1:-3}
DURATION=${2:-10}
CONNECTIONS=32
[ "$(id -u)" = 0 ] || { echo "redirect.sh builds network namespaces: run it as root" >&2; exit 2; }
for tool in ip iptables setpriv wrk nginx curl python3; do
  command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install iproute2 iptables util-linux wrk nginx curl python3" >&2; exit 2; }
done
[ -x "$BIN/meshguard-cp" ] || ./meshguard.sh build
[ -x "$PROXY" ] || ./meshguard.sh build-aot
WORK=$(mktemp -d /tmp/meshguard-redirect.XXXXXX)
chmod 755 "$WORK"
# shellcheck source=loadtests/scenarios/lib.sh
. "$ROOT/loadtests/scenarios/lib.sh"
NS="mgbench$$"
NODE="$NS-node" A="$NS-a" B="$NS-b"
end_all() { cleanup; ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; ip netns del "$NODE" 2>/dev/null || true; }
trap end_all EXIT

# --- the network: a bridge in the node namespace, a veth pair per pod
ip netns add "$NODE"; ip -n "$NODE" link set lo up
ip -n "$NODE" link add mg0 type bridge; ip -n "$NODE" addr add 10.77.0.254/24 dev mg0; ip -n "$NODE" link set mg0 up
for pod in a:1 b:2; do
  name=${pod%:*}; index=${pod#*:}; ns="$NS-$name"
  ip netns add "$ns"; ip -n "$ns" link set lo up
  ip -n "$NODE" link add "v$index" type veth peer name eth0 netns "$ns"
  ip -n "$NODE" link set "v$index" master mg0 up
  ip -n "$ns" addr add "10.77.0.$index/24" dev eth0; ip -n "$ns" link set eth0 up
done
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# --- the control plane on the node, with the orders team's policy
mkdir -p "$WORK/cp/policies"; cp samples/policies/orders.yaml "$WORK/cp/policies/"
ip netns exec "$NODE" "$BIN/meshguard-cp" --data "$WORK/cp" --bind-address 10.77.0.254 >"$WORK/cp.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 300); do grep -q " webhook=" "$WORK/cp.log" && break; sleep 0.1; done

# --- orders' app: nginx on 127.0.0.1:8080 (reached by its sidecar) and on 10.77.0.2:8081 (the direct floor)
nginx_conf "$WORK/nginx" "server { listen 127.0.0.1:8080; listen 10.77.0.2:8081; location / { return 200 'ok\n'; } }"
start_nginx "$WORK/nginx" ip netns exec "$B"

# --- each pod: the redirect (8081 left alone for the floor), then its sidecar as uid 1337
SIDECAR_A=""
for pod in a:frontend:1 b:orders:2; do
  IFS=: read -r name service index <<<"$pod"; ns="$NS-$name"
  in_ns "$ns" "$PROXY" redirect install --proxy-uid 1337 --exclude-inbound-ports 15000,15020,8081 --exclude-outbound-ports 8081 >/dev/null
  token=$("$BIN/meshctl" token create --data "$WORK/cp" --spiffe-id "spiffe://mesh.local/ns/shop/sa/$service")
  mkdir -p "$WORK/$name"; chown 1337:1337 "$WORK/$name"
  # Straight from this shell (no function), so that $! is the sidecar itself: ip, setpriv and env each exec the next.
  ip netns exec "$ns" setpriv --reuid 1337 --regid 1337 --clear-groups env HOME="$WORK/$name" "$PROXY" \
    --cp https://10.77.0.254:15012 --cp-grpc https://10.77.0.254:15010 --cp-bundle "$WORK/cp/bundle.pem" --join-token "$token" \
    --service "$service" --app-port 8080 --inbound-address 0.0.0.0 --advertise-address "10.77.0.$index:15006" --state-dir "$WORK/$name" \
    >"$WORK/$name.log" 2>&1 & PIDS+=($!)
  if [ "$name" = a ]; then SIDECAR_A=$!; fi
done
for name in a b; do
  for _ in $(seq 1 300); do in_ns "$NS-$name" curl -sf http://127.0.0.1:15000/ready >/dev/null && break; sleep 0.1; done
done
as_app() { in_ns "$A" setpriv --reuid 1000 --regid 1000 --clear-groups "$@"; }
declare -A URL=([direct]="http://10.77.0.2:8081/orders/1" [explicit]="http://127.0.0.1:15001/orders/1" [transparent]="http://10.77.0.2:8080/orders/1")
declare -A HOST=([direct]="10.77.0.2:8081" [explicit]="orders" [transparent]="10.77.0.2:8080")
for config in direct explicit transparent; do
  for _ in $(seq 1 100); do as_app curl -sf -H "Host: ${HOST[$config]}" "${URL[$config]}" >/dev/null && break; sleep 0.1; done
  as_app curl -sf -H "Host: ${HOST[$config]}" "${URL[$config]}" >/dev/null || { echo "$config: no answer at ${URL[$config]}" >&2; exit 1; }
done

# --- warm-up, then interleaved rounds
for config in direct explicit transparent; do as_app wrk -t2 -c"$CONNECTIONS" -d3s -H "Host: ${HOST[$config]}" "${URL[$config]}" >/dev/null; done
: >"$WORK/rounds"
for round in $(seq 1 "$ROUNDS"); do
  for config in direct explicit transparent; do
    before=$(cpu_seconds "$SIDECAR_A")
    out=$(as_app wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Host: ${HOST[$config]}" "${URL[$config]}")
    after=$(cpu_seconds "$SIDECAR_A")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out"); p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    echo "$config $round $rps $requests $errors $p50 $p99 $before $after" >>"$WORK/rounds"
    echo "round $round $config: $rps req/s, p50 $p50, p99 $p99, $errors errors" >&2
  done
done

python3 - "$WORK/rounds" "$ROUNDS" "$DURATION" "$CONNECTIONS" >loadtests/results/redirect.md <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
def ms(t):
    return float(t[:-2]) if t.endswith("ms") else float(t[:-2]) / 1000 if t.endswith("us") else float(t[:-1]) * 1000
print("# Transparent redirect: what it costs\n")
print(f"`loadtests/scenarios/redirect.sh {sys.argv[2]} {sys.argv[3]}`: network namespaces on one machine (2 cores), wrk with "
      f"{sys.argv[4]} connections as uid 1000 in the frontend pod, NativeAOT sidecars as uid 1337, nginx as the app, "
      "the orders team's policy and flow logs on. Median round of each configuration; CPU is the frontend sidecar's.\n")
print("| configuration | requests/s | p50 ms | p99 ms | errors | frontend sidecar CPU-s per 10k requests |")
print("| --- | --- | --- | --- | --- | --- |")
med = {}
for config in ["direct", "explicit", "transparent"]:
    mine = sorted((r for r in rows if r[0] == config), key=lambda r: float(r[2]))
    r = mine[len(mine) // 2]
    cpu = (float(r[8]) - float(r[7])) / int(r[3]) * 10000 if config != "direct" else None
    med[config] = float(r[2])
    print(f"| {config} | {float(r[2]):,.0f} | {ms(r[5]):.2f} | {ms(r[6]):.2f} | {sum(int(x[4]) for x in mine)} | {'-' if cpu is None else f'{cpu:.3f}'} |")
print(f"\ntransparent / explicit requests/s: {med['transparent'] / med['explicit']:.3f}")
PY
cat loadtests/results/redirect.md
