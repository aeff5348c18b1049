#!/usr/bin/env bash
# Console page time over the shared flow store: a control-plane replica on PostgreSQL holding RECORDS flow records
# spread over the last 24 hours (20 callee workloads, 37 callers, one call in ten denied), and a logged-in client
# timing each console page ROUNDS times (curl's time_total, the whole answer). The records are seeded with SQL as
# the store keeps them (line, hash, a reviewer's columns, the per-minute edge counts); the page code path is the
# one the replica serves to a reviewer. The seeded lines are not signed: the chain audit is left for 24 hours.
# Usage: loadtests/scenarios/console-pages.sh [RECORDS] [ROUNDS]; writes loadtests/results/console-pages.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN="$ROOT/out/bin"
RECORDS=${1:-10000000}
ROUNDS=${2:-20}
WORK=$(mktemp -d)
chmod 755 "$WORK" # the database runs as the postgres user
source loadtests/scenarios/lib.sh
[ -x "$BIN/meshguard-cp" ] || ./meshguard.sh build

start_postgres
bootstrap=$(free_port); grpc=$(free_port); admin=$(free_port); webhook=$(free_port)
"$BIN/meshguard-cp" --data "$WORK/cp" --bootstrap-port "$bootstrap" --grpc-port "$grpc" --admin-port "$admin" --webhook-port "$webhook" \
  --flow-store "$FLOW_STORE" --flow-audit-interval 24h >"$WORK/cp.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$admin/healthz"

echo "== seeding $RECORDS records" >&2
seed_start=$(date +%s.%N)
# The lines' indexes as the replica made them, dropped for the bulk insert and built again after it.
# (pg_indexes says ON ONLY for a partitioned table's own index: built so, the partition would have none.)
psql -At -c "SELECT replace(indexdef, ' ON ONLY ', ' ON ') || ';' FROM pg_indexes WHERE tablename = 'meshguard_flow_lines'" >"$WORK/indexes.sql"
psql -At -c "SELECT 'DROP INDEX ' || indexname || ';' FROM pg_indexes WHERE tablename = 'meshguard_flow_lines'" | psql -q
psql -q -v ON_ERROR_STOP=1 -v records="$RECORDS" >&2 <<'SQL'
SET synchronous_commit = off;
SET maintenance_work_mem = '512MB';
SELECT format('CREATE TABLE IF NOT EXISTS meshguard_flow_lines_%s PARTITION OF meshguard_flow_lines FOR VALUES FROM (%L) TO (%L)',
              to_char(d, 'YYYYMMDD'), d, d + 1) AS ddl
FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) day \gexec
INSERT INTO meshguard_flow_chains (workload, chain, last_seq, last_hash, verified_seq, lines, updated)
SELECT 'spiffe://mesh.local/ns/shop/sa/svc' || w, 0, :records / 20, '', :records / 20, :records / 20, now() FROM generate_series(0, 19) w;
INSERT INTO meshguard_flow_lines (received, workload, chain, seq, time, kind, direction, source_id, dest_id, dest_service, decision, policy, rule, method, path, status, request_id, hash, line)
SELECT now(), dest, 0, i / 20 + 1, t, 'flow', 'inbound', src, dest, 'svc' || (i % 20), dec, 'shop/svc' || (i % 20) || '-callers', 'rule' || (i % 37 % 7), 'GET', '/items/' || i,
       CASE WHEN dec = 'allow' THEN 200 ELSE 403 END, 'req-' || i, sha256(line), line
FROM (
  SELECT i, t, src, dest, dec,
         convert_to(json_build_object('kind', 'flow', 'time', to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"0Z"'), 'direction', 'inbound',
           'request_id', 'req-' || i, 'source_id', src, 'dest_id', dest, 'dest_service', 'svc' || (i % 20), 'dest_port', 8080, 'method', 'GET',
           'path', '/items/' || i, 'status', CASE WHEN dec = 'allow' THEN 200 ELSE 403 END, 'decision', dec,
           'policy', 'shop/svc' || (i % 20) || '-callers', 'rule', 'rule' || (i % 37 % 7), 'seq', i / 20 + 1, 'prev', repeat('0', 64))::text, 'UTF8') AS line
  FROM (
    SELECT i, now() - i * (interval '86400 seconds' / :records) AS t,
           'spiffe://mesh.local/ns/callers/sa/app' || (i % 37) AS src,
           'spiffe://mesh.local/ns/shop/sa/svc' || (i % 20) AS dest,
           CASE WHEN i % 10 = 0 THEN 'deny' ELSE 'allow' END AS dec
    FROM generate_series(0, :records - 1) i) r) l;
INSERT INTO meshguard_flow_edges (minute, source_id, dest_id, decision, policy, rule, calls)
SELECT date_trunc('minute', time), source_id, dest_id, decision, policy, rule, count(*) FROM meshguard_flow_lines GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1;
INSERT INTO meshguard_flow_edges_hourly (hour, source_id, dest_id, decision, policy, rule, calls)
SELECT date_trunc('hour', minute), source_id, dest_id, decision, policy, rule, sum(calls) FROM meshguard_flow_edges GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1;
SQL
psql -q -v ON_ERROR_STOP=1 -c "SET maintenance_work_mem = '512MB'" -f "$WORK/indexes.sql" -c 'ANALYZE' >&2
seed_seconds=$(python3 -c "import time; print(round(time.time() - $seed_start))")
rows=$(psql -At -c 'SELECT count(*) FROM meshguard_flow_lines')
echo "== $rows records seeded in ${seed_seconds}s" >&2

# Log in as a reviewer does: meshctl's one-time URL, then the session cookie.
login=$("$BIN/meshctl" console url --data "$WORK/cp")
curl -s -o /dev/null -c "$WORK/cookies" "$login"
base="http://127.0.0.1:$admin"
caller='spiffe://mesh.local/ns/callers/sa/app3'
callee='spiffe://mesh.local/ns/shop/sa/svc7'
pages=(
  "overview|/console/"
  "graph, 24 h|/console/graph?window=24h"
  "flows, 1 h, no filter|/console/flows?window=1h"
  "flows, 24 h, by caller and decision|/console/flows?src=$caller&decision=deny&window=24h"
  "flows, 24 h, one edge (caller and callee)|/console/flows?src=$caller&dst=$callee&window=24h"
  "workloads|/console/workloads"
)
: >"$WORK/times.txt"
for page in "${pages[@]}"; do
  name=${page%%|*}; path=${page#*|}
  curl -s -o /dev/null -b "$WORK/cookies" "$base$path" # warm: the first request of a path compiles its code
  for _ in $(seq "$ROUNDS"); do
    status_time=$(curl -s -o "$WORK/page.html" -w '%{http_code} %{time_total}' -b "$WORK/cookies" "$base$path")
    [ "${status_time%% *}" = 200 ] || { echo "$name: HTTP ${status_time%% *}" >&2; exit 1; }
    echo "$name|${status_time#* }" >>"$WORK/times.txt"
  done
done

python3 - "$WORK/times.txt" "$rows" "$seed_seconds" "$ROUNDS" "$(nproc)" >loadtests/results/console-pages.md <<'PY'
import sys
times = {}
for line in open(sys.argv[1]):
    name, t = line.rstrip("\n").rsplit("|", 1)
    times.setdefault(name, []).append(float(t) * 1000)
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]
print(f"# Console page time over the shared flow store ({int(sys.argv[2]):,} records)\n")
print(f"`loadtests/scenarios/console-pages.sh {sys.argv[2]} {sys.argv[4]}` on {sys.argv[5]} cores: one replica on PostgreSQL (both on this machine), "
      f"{int(sys.argv[2]):,} flow records over the last 24 h (seeded in {sys.argv[3]} s), each page fetched {sys.argv[4]} times after one warm-up request.\n")
print("| page | p50 ms | p95 ms | max ms |")
print("| --- | ---: | ---: | ---: |")
worst = 0
for name, values in times.items():
    worst = max(worst, pct(values, 95))
    print(f"| {name} | {pct(values, 50):.1f} | {pct(values, 95):.1f} | {max(values):.1f} |")
print(f"\nTarget (issue: flow logs past one machine): p95 <= 200 ms with 10 million stored records; worst p95 here: {worst:.1f} ms.")
PY
cat loadtests/results/console-pages.md
