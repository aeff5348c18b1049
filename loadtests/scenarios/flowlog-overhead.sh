#!/usr/bin/env bash
# Throughput of a MeshGuard sidecar pair with flow logging on and off, in one run, on loopback.
# frontend's sidecar (outbound, plain HTTP/1.1 from wrk) -> mTLS HTTP/2 -> orders' sidecar -> meshguard-sample.
# Both pairs run side by side; wrk alternates between them for ROUNDS rounds and the medians are compared,
# so that noise on a shared 2-core machine hits both alike. Beside requests/s it reports the CPU the two
# sidecars of each pair spent per 10,000 requests (from /proc), the steadier measure on a noisy machine.
# With flow logs on, the sidecars also upload their logs to the control plane: the script reports the control
# plane's CPU per 10,000 lines it collected, and after a graceful stop whether each copy is the log byte for byte.
# Usage: loadtests/scenarios/flowlog-overhead.sh [DURATION_S] [CONNECTIONS] [ROUNDS]; writes loadtests/results/flowlog-overhead.md
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN="$ROOT/out/bin"
DURATION=${1:-10}
CONNECTIONS=${2:-32}
ROUNDS=${3:-5}
WARMUP=${MESHGUARD_WARMUP_S:-10}  # JIT builds need about 10 s of load before they run at full speed
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }
command -v h2load >/dev/null || { echo "h2load is needed (apt-get install nghttp2-client)" >&2; exit 2; }
[ -x "$BIN/meshguard-proxy" ] || ./meshguard.sh build
# MESHGUARD_LOAD_DIR puts the logs elsewhere (e.g. /dev/shm) to tell disk cost from CPU cost.
WORK=$(mktemp -d "${MESHGUARD_LOAD_DIR:-/tmp}/meshguard-load.XXXXXX")
# shellcheck source=loadtests/scenarios/lib.sh
. "$ROOT/loadtests/scenarios/lib.sh"

start_pair() { # $1 = on|off; sets URL_<mode> and SIDECARS_<mode>
  local mode=$1 app
  app=$(free_port)
  "$BIN/meshguard-sample" --name orders --port "$app" >/dev/null 2>&1 &
  PIDS+=($!)
  # orders' sidecar speaks HTTP/1.1 to the sample app whatever the caller spoke (the app takes no h2c).
  MESH_APP_PROTOCOL=http1 start_mesh_pair "$WORK/$mode" "$app" "$BIN/meshguard-proxy" "$mode" --default-policy allow-authenticated
  printf -v "URL_$mode" '%s' "$MESH_URL"
  printf -v "SIDECARS_$mode" '%s' "$MESH_SIDECARS"
  printf -v "CP_$mode" '%s' "$MESH_CP"
  printf -v "CP_ADMIN_$mode" '%s' "$MESH_CP_ADMIN"
}
collected_lines() { curl -s "http://127.0.0.1:$CP_ADMIN_on/metrics" | awk '/^meshguard_cp_flow_lines_collected_total/ {print $2}'; }

start_pair off
start_pair on
for mode in off on; do
  url_var="URL_$mode"
  wrk -t2 -c"$CONNECTIONS" -d"${WARMUP}s" -H "Host: orders" "${!url_var}" >/dev/null
  h2load -c8 -m16 -D 3 -H ":authority: orders" "${!url_var}" >/dev/null
done
# load KIND MODE ROUND: one round of KIND's client (h1: wrk, h2: h2load with multiplexed streams) on MODE's pair;
# prints how many requests were answered (h2load: 2xx or 3xx, "succeeded").
load() {
  local url_var="URL_$2" out="$WORK/$1-$2-$3.txt"
  if [ "$1" = h1 ]; then
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Host: orders" "${!url_var}" >"$out"
    awk '/requests in/ {print $1}' "$out"
  else
    h2load -c8 -m16 -D "$DURATION" -H ":authority: orders" "${!url_var}" >"$out"
    awk '/^requests:/ {print $8}' "$out"
  fi
}
# run_rounds KIND: ROUNDS rounds of both pairs, A B B A so that drift hits both alike; each run's sidecar CPU-s per
# 10,000 requests, per sidecar, into $WORK/KIND-cpu-MODE-ROUND.txt.
run_rounds() {
  local round mode order sidecars_var before after requests
  for round in $(seq 1 "$ROUNDS"); do
    order="off on"; if [ $((round % 2)) = 0 ]; then order="on off"; fi
    for mode in $order; do
      sidecars_var="SIDECARS_$mode"
      # shellcheck disable=SC2086 # a list of pids
      before=$(cpu_seconds ${!sidecars_var})
      requests=$(load "$1" "$mode" "$round")
      # shellcheck disable=SC2086
      after=$(cpu_seconds ${!sidecars_var})
      python3 -c "print(f'{($after - $before) / max(1, $requests) * 10000 / 2:.4f}')" >"$WORK/$1-cpu-$mode-$round.txt"
    done
  done
}
CP_CPU_BEFORE=$(cpu_seconds "$CP_on"); COLLECTED_BEFORE=$(collected_lines)
run_rounds h1
# With an HTTP/2 client the sidecars batch more per write, so what a record costs weighs more against a request.
run_rounds h2
sleep 2 # the last segments go up within a second
CP_CPU=$(python3 -c "print(f'{($(cpu_seconds "$CP_on") - $CP_CPU_BEFORE) / max(1, $(collected_lines) - $COLLECTED_BEFORE) * 10000:.4f}')")
COLLECTED=$(( $(collected_lines) - COLLECTED_BEFORE ))
LINES=$("$BIN/meshctl" flows query "$WORK/on/orders-flows" --json | wc -l)
# A graceful stop: each sidecar signs a final checkpoint and uploads it; then the copies must be the logs.
# shellcheck disable=SC2086 # a list of pids
kill -TERM $SIDECARS_on; for pid in $SIDECARS_on; do while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; done
COPIES=""
for svc in orders frontend; do
  copy=$(grep -l "/sa/$svc\$" "$WORK"/on/cp/flows/*/workload | xargs dirname)
  # Each side keeps only its newest files (the sidecar 10 of 10 MiB, the control plane 32 of 8 MiB): what both
  # still hold must be the same bytes, so the shorter is the end of the longer.
  COPIES="$COPIES $svc: $(python3 - "$WORK/on/$svc-flows" "$copy" <<'PY'
import glob, sys
log, copy = (b"".join(open(f, "rb").read() for f in sorted(glob.glob(d + "/flows-*.jsonl"))) for d in sys.argv[1:3])
short, long_ = sorted((log, copy), key=len)
print(f"{'the same' if long_.endswith(short) else 'DIFFERENT'} over the last {len(short) / 2**20:.1f} MiB")
PY
);"
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rps_all() { # KIND MODE: requests answered per second, each round
  local f
  for f in "$WORK"/"$1"-"$2"-*.txt; do
    if [ "$1" = h1 ]; then awk '/Requests\/sec/ {print $2}' "$f"; else awk -v d="$DURATION" '/^requests:/ {printf "%.2f\n", $8 / d}' "$f"; fi
  done
}
p99_all() { for f in "$WORK"/h1-"$1"-*.txt; do grep ' 99%' "$f" | awk '{print $2}'; done | tr '\n' ' '; }
cpu_all() { cat "$WORK"/"$1"-cpu-"$2"-*.txt; }
h2_failed() { cat "$WORK"/h2-o*.txt | awk '/^requests:/ {n += $6 - $8} END {print n + 0}'; }  # done, not 2xx or 3xx
# summarize KIND: sets KIND_OFF, KIND_ON, KIND_RATIO, KIND_CPU_OFF, KIND_CPU_ON, KIND_CPU_RATIO, KIND_PAIRED (each
# round's on/off: the two runs of a round are seconds apart) and KIND_PAIRED_MEDIAN.
summarize() {
  local off on cpu_off cpu_on paired
  off=$(rps_all "$1" off | median); on=$(rps_all "$1" on | median)
  cpu_off=$(cpu_all "$1" off | median); cpu_on=$(cpu_all "$1" on | median)
  paired=$(paste <(rps_all "$1" on) <(rps_all "$1" off) | awk '{printf "%.1f\n", $1/$2*100}')
  printf -v "${1}_OFF" '%s' "$off"; printf -v "${1}_ON" '%s' "$on"
  printf -v "${1}_RATIO" '%s' "$(python3 -c "print(f'{$on/$off*100:.1f}')")"
  printf -v "${1}_CPU_OFF" '%s' "$cpu_off"; printf -v "${1}_CPU_ON" '%s' "$cpu_on"
  printf -v "${1}_CPU_RATIO" '%s' "$(python3 -c "print(f'{$cpu_on/$cpu_off*100:.1f}')")"
  printf -v "${1}_PAIRED" '%s' "$(echo "$paired" | tr '\n' ' ')"
  printf -v "${1}_PAIRED_MEDIAN" '%s' "$(echo "$paired" | median)"
}
summarize h1
summarize h2
mkdir -p loadtests/results
RESULT=loadtests/results/flowlog-overhead${MESHGUARD_LOAD_DIR:+-$(basename "$MESHGUARD_LOAD_DIR")}.md
{
  echo "# Flow log overhead ($(date -u +%Y-%m-%d), $(nproc) cores, loadtests/scenarios/flowlog-overhead.sh $DURATION $CONNECTIONS $ROUNDS)"
  echo
  echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s through frontend's sidecar (HTTP/1.1) -> mTLS HTTP/2 -> orders' sidecar -> meshguard-sample,"
  echo "all on one machine; two pairs side by side, ${WARMUP} s of warm-up each, then $ROUNDS alternating rounds each."
  echo "CPU: user+system seconds of the two sidecars per 10,000 requests, per sidecar (mean of the pair)."
  echo
  echo "| flow logs | median requests/s | each round | p99 latency per round | median CPU-s/10k per sidecar | each round |"
  echo "| --- | ---: | --- | --- | ---: | --- |"
  echo "| off | $h1_OFF | $(rps_all h1 off | tr '\n' ' ') | $(p99_all off) | $h1_CPU_OFF | $(cpu_all h1 off | tr '\n' ' ') |"
  echo "| on (both sidecars) | $h1_ON | $(rps_all h1 on | tr '\n' ' ') | $(p99_all on) | $h1_CPU_ON | $(cpu_all h1 on | tr '\n' ' ') |"
  echo
  echo "Throughput with flow logs on: **$h1_RATIO%** of off (medians); per round on/off: $h1_PAIRED% (median **$h1_PAIRED_MEDIAN%**)."
  echo "Sidecar CPU per request with flow logs on: **$h1_CPU_RATIO%** of off."
  echo
  echo "HTTP/2 client, h2load -c8 -m16 -D $DURATION (128 streams at once), the same pairs, $ROUNDS alternating rounds each (requests/s: answered 2xx or 3xx):"
  echo
  echo "| flow logs | median requests/s | each round | median CPU-s/10k per sidecar | each round |"
  echo "| --- | ---: | --- | ---: | --- |"
  echo "| off | $h2_OFF | $(rps_all h2 off | tr '\n' ' ') | $h2_CPU_OFF | $(cpu_all h2 off | tr '\n' ' ') |"
  echo "| on (both sidecars) | $h2_ON | $(rps_all h2 on | tr '\n' ' ') | $h2_CPU_ON | $(cpu_all h2 on | tr '\n' ' ') |"
  echo
  echo "HTTP/2 throughput with flow logs on: **$h2_RATIO%** of off (medians); per round on/off: $h2_PAIRED% (median **$h2_PAIRED_MEDIAN%**)."
  echo "Sidecar CPU per request with flow logs on (HTTP/2 client): **$h2_CPU_RATIO%** of off. Answers other than 2xx or 3xx over all HTTP/2 rounds: $(h2_failed)."
  echo "Flow records in orders' log after the run: $LINES."
  echo "Upload: the control plane collected $COLLECTED lines during the rounds (meshguard_cp_flow_lines_collected_total), at **$CP_CPU CPU-s per 10,000 lines** (received over mTLS, checked, chained, written)."
  echo "After a graceful stop, each copy against its sidecar's log:$COPIES"
  echo "Logs written under: ${MESHGUARD_LOAD_DIR:-/tmp} ($(df --output=fstype "${MESHGUARD_LOAD_DIR:-/tmp}" | tail -1))."
} > "$RESULT"
cat "$RESULT"
