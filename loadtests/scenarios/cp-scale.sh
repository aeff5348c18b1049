#!/usr/bin/env bash
# One control plane and a thousand sidecars: the driver (loadtests/MeshGuard.ControlPlaneScale, cp-scale)
# simulates N sidecars that attest (join token + CSR), each hold a snapshot stream over its own mTLS HTTP/2
# connection, see K policy changes and renew once, against three set-ups in turn:
#   files        one replica, the embedded file store (policy changes written into DATA/policies)
#   etcd         one replica on etcd (changes put into etcd, as meshctl policy apply --store does)
#   etcd-2       two replicas sharing that etcd, the sidecars split between them
# Reported per set-up: SVIDs issued per second, time from a policy write to a stream having the new version
# (p50/p99 over every stream and change) and to all N streams having it (p50/p99 over the changes; target
# p99 <= 2 s), the replicas' CPU and resident memory. etcd (Debian etcd-server) runs on loopback in a temp dir.
# Usage: loadtests/scenarios/cp-scale.sh [SIDECARS] [CHANGES]; writes loadtests/results/cp-scale.json and .md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN="$ROOT/out/bin"
SIDECARS=${1:-1000}
CHANGES=${2:-10}
SETUPS=(${MESHGUARD_SCALE_SETUPS:-files etcd etcd-2})
WORK=$(mktemp -d)
source loadtests/scenarios/lib.sh
command -v etcd >/dev/null || { echo "etcd is needed: apt-get install etcd-server" >&2; exit 2; }
[ -x "$BIN/meshguard-cp" ] || ./meshguard.sh build
cp_scale_driver
# A thousand streams are a thousand connections on each side.
ulimit -n "$(ulimit -Hn)"
head -c 32 /dev/urandom | base64 > "$WORK/store.key"; chmod 600 "$WORK/store.key"

start_etcd() { # DIR: sets ETCD_STORE
  local client peer; client=$(free_port); peer=$(free_port)
  etcd --name scale --data-dir "$1" --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "scale=http://127.0.0.1:$peer" --logger zap >"$1.log" 2>&1 & PIDS+=($!)
  wait_http "http://127.0.0.1:$client/health"
  ETCD_STORE="etcd:http://127.0.0.1:$client"
}

start_replica() { # NAME [ARGS...]: appends to REPLICA_PIDS, BOOTSTRAPS, GRPCS
  local name=$1; shift
  local bootstrap grpc admin webhook
  bootstrap=$(free_port); grpc=$(free_port); admin=$(free_port); webhook=$(free_port)
  "$BIN/meshguard-cp" --data "$WORK/$name" --bootstrap-port "$bootstrap" --grpc-port "$grpc" --admin-port "$admin" \
    --webhook-port "$webhook" --svid-ttl 1h "$@" >"$WORK/$name.log" 2>&1 & PIDS+=($!); REPLICA_PIDS+=($!)
  wait_http "http://127.0.0.1:$admin/healthz"
  BOOTSTRAPS+=("https://127.0.0.1:$bootstrap"); GRPCS+=("https://127.0.0.1:$grpc"); BUNDLE="$WORK/$name/bundle.pem"
}

join() { local IFS=,; echo "$*"; }

: > "$WORK/results.jsonl"
for setup in "${SETUPS[@]}"; do
  REPLICA_PIDS=(); BOOTSTRAPS=(); GRPCS=()
  case $setup in
    files) start_replica "$setup-cp"; STORE="files:$WORK/$setup-cp" ;;
    etcd) start_etcd "$WORK/$setup-etcd"; start_replica "$setup-cp" --store "$ETCD_STORE" --store-key-file "$WORK/store.key"; STORE=$ETCD_STORE ;;
    etcd-2) start_etcd "$WORK/$setup-etcd"
      for replica in a b; do start_replica "$setup-cp-$replica" --store "$ETCD_STORE" --store-key-file "$WORK/store.key"; done
      STORE=$ETCD_STORE ;;
    *) echo "unknown set-up $setup" >&2; exit 2 ;;
  esac
  echo "== $setup: $SIDECARS sidecars, $CHANGES policy changes" >&2
  "$DRIVER" --label "$setup" --sidecars "$SIDECARS" --changes "$CHANGES" --bootstrap "$(join "${BOOTSTRAPS[@]}")" \
    --grpc "$(join "${GRPCS[@]}")" --bundle "$BUNDLE" --store "$STORE" --pids "$(join "${REPLICA_PIDS[@]}")" | tee -a "$WORK/results.jsonl"
  for pid in "${REPLICA_PIDS[@]}"; do kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; done
done

python3 - "$WORK/results.jsonl" "$(nproc)" >loadtests/results/cp-scale.md <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
json.dump(rows, open("loadtests/results/cp-scale.json", "w"), indent=1)
n = rows[0]["sidecars"]
print(f"# Control plane at scale: {n} simulated sidecars\n")
print(f"`loadtests/scenarios/cp-scale.sh {n} {rows[0]['changes']}` on {sys.argv[2]} cores, driver and replicas on the same machine.")
print("Each sidecar attests with a join token, holds one snapshot stream over its own mTLS HTTP/2 connection and renews once.")
print("A policy change is a write of a policy selecting every sidecar; 'to a stream' is the write to that stream's")
print("new snapshot, 'to all' the write to the last of the streams having it (p50/p99 over the changes).\n")
print("| set-up | replicas | SVIDs/s | attest p50 / p99 | to a stream p50 / p99 | to all p50 / p99 / max | CPU per change | renewals/s | RSS with streams | peak RSS |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    print(f"| {r['label']} | {r['replicas']} | {r['svids_per_second']} | {r['attest_p50_ms']} / {r['attest_p99_ms']} ms "
          f"| {r['stream_p50_ms']} / {r['stream_p99_ms']} ms | {r['all_streams_p50_ms']} / {r['all_streams_p99_ms']} / {r['all_streams_max_ms']} ms "
          f"| {r['cpu_s_per_change']} s | {r['renewals_per_second']} | {r['rss_mib_with_streams']} MiB | {r['rss_peak_mib']} MiB |")
print("\nCPU and memory are the replicas' together. Target: a change at all streams within 2 s at p99.")
PY
cat loadtests/results/cp-scale.md
