#!/usr/bin/env bash
# Flow-log ingest: SIDECARS simulated sidecars (the cp-scale driver) attest to one meshguard-cp replica, each
# write RECORDS inbound flow records ahead of the clock (signed with its own SVID key, a checkpoint every 1,000),
# then all upload at once in the segments a sidecar sends (up to 1 MiB, ending at a signed record). Two set-ups:
#   files      the replica's own data directory (DATA/flows/NAME/)
#   postgres   the shared flow store on PostgreSQL (Debian's postgresql, default settings, run here in a temp dir)
# Reported per set-up: lines taken per second, CPU per 10,000 lines of the replica and of the database, upload
# latency. Usage: loadtests/scenarios/flow-ingest.sh [SIDECARS] [RECORDS]; writes loadtests/results/flow-ingest.{json,md}.
# 50,000 records each by default: with 20,000 the upload phase lasts 15-25 s and the replica, a fresh process, is
# still compiling the ingest path (perf: a third of its samples in the JIT and the runtime), doubling its CPU per line.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN="$ROOT/out/bin"
SIDECARS=${1:-20}
RECORDS=${2:-50000}
SETUPS=(${MESHGUARD_INGEST_SETUPS:-files postgres})
WORK=$(mktemp -d)
chmod 755 "$WORK" # the database runs as the postgres user
source loadtests/scenarios/lib.sh
[ -x "$BIN/meshguard-cp" ] || ./meshguard.sh build
cp_scale_driver

: > "$WORK/results.jsonl"
for setup in "${SETUPS[@]}"; do
  bootstrap=$(free_port); grpc=$(free_port); admin=$(free_port); webhook=$(free_port)
  extra=(); STORE_PID=""
  if [ "$setup" = postgres ]; then start_postgres; extra=(--flow-store "$FLOW_STORE"); fi
  "$BIN/meshguard-cp" --data "$WORK/$setup-cp" --bootstrap-port "$bootstrap" --grpc-port "$grpc" --admin-port "$admin" \
    --webhook-port "$webhook" --svid-ttl 1h "${extra[@]}" >"$WORK/$setup-cp.log" 2>&1 & PIDS+=($!); replica=$!
  wait_http "http://127.0.0.1:$admin/healthz"
  echo "== $setup: $SIDECARS sidecars, $RECORDS records each" >&2
  "$DRIVER" --label "$setup" --sidecars "$SIDECARS" --changes 0 --bootstrap "https://127.0.0.1:$bootstrap" --grpc "https://127.0.0.1:$grpc" \
    --bundle "$WORK/$setup-cp/bundle.pem" --store "files:$WORK/$setup-cp" --pids "$replica" \
    --flow-sidecars "$SIDECARS" --flow-records "$RECORDS" ${STORE_PID:+--store-pids "$STORE_PID"} | tee -a "$WORK/results.jsonl"
  kill -TERM "$replica"; wait "$replica" 2>/dev/null || true
  if [ -n "$STORE_PID" ]; then kill -TERM "$STORE_PID"; wait "$STORE_PID" 2>/dev/null || true; fi
done

python3 - "$WORK/results.jsonl" "$(nproc)" >loadtests/results/flow-ingest.md <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
json.dump(rows, open("loadtests/results/flow-ingest.json", "w"), indent=1)
r0 = rows[0]
print(f"# Flow-log ingest: {r0['flow_sidecars']} simulated sidecars into one replica\n")
print(f"`loadtests/scenarios/flow-ingest.sh {r0['flow_sidecars']} {r0['flow_lines'] // r0['flow_sidecars']}` on {sys.argv[2]} cores; driver, replica and database on the same machine.")
print("Each sidecar's log is written ahead (a signed checkpoint every 1,000 records) and uploaded in the uploader's segments (each in 64 KiB parts, as a sidecar sends it), all sidecars at once.\n")
print("| store | lines | MiB | seconds | lines/s | replica CPU-s per 10k lines | database CPU-s per 10k lines | upload p50 / p99 |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    print(f"| {r['label']} | {r['flow_lines']:,} | {r['flow_mib']} | {r['flow_seconds']} | {r['flow_lines_per_second']:,.0f} | {r['flow_replica_cpu_s_per_10k_lines']} "
          f"| {r['flow_store_cpu_s_per_10k_lines'] if r['label'] != 'files' else '-'} | {r['flow_upload_p50_ms']} / {r['flow_upload_p99_ms']} ms |")
print("\nTargets (issue: flow logs past one machine): >= 50,000 lines/s into PostgreSQL; the replica's CPU per 10k lines <= 2x the file store's.")
PY
cat loadtests/results/flow-ingest.md
