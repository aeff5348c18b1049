#!/usr/bin/env bash
# MeshGuard: one entry point for people and CI.
#   ./meshguard.sh build   publish meshguard-cp, meshguard-proxy, meshctl (and the demo's sample app) to out/bin/,
#                          and the sidecar as a NativeAOT executable to out/aot/meshguard-proxy (the one to ship)
#   ./meshguard.sh build-aot  the NativeAOT sidecar alone
#   ./meshguard.sh demo    build if needed, run the local mesh, show allowed and refused calls (--serve keeps it up);
#                          `demo --containers` builds the images and runs the mesh as podman pods instead
#   ./meshguard.sh images  build the images (sidecar, init, control plane, meshctl, sample) offline with mmdebstrap and
#                          buildah: OCI archives, sizes, digests and SBOMs in out/images/, images in podman's storage
#   ./meshguard.sh test    install test prerequisites, build (JIT and NativeAOT sidecar), run every test, the
#                          functional suite against both sidecar builds; ends with "N passed, N failed"
#   ./meshguard.sh lint    dotnet format --verify-no-changes
#   ./meshguard.sh fuzz    coverage-guided fuzzing under AFL++ (SharpFuzz): `fuzz [SECONDS] [TARGET...]`, 300 s per
#                          target by default; findings in out/fuzz/runs/TARGET/default/crashes
#   ./meshguard.sh bench   the peer comparison (direct, plain YARP, nginx, HAProxy, MeshGuard), gRPC calls through the pair
#                          and the microbenchmarks; `bench peers [ROUNDS] [DURATION_S]`, `bench grpc [ROUNDS] [DURATION_S]`
#                          or `bench micro [FILTER]` for one; results in loadtests/results/
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
BIN="$ROOT/out/bin"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# podman and buildah as they work here (runc, cgroupfs, no default ulimits): see build/images/containers.conf.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/build/images/containers.conf}"

EXES=(
  "control-plane/src/MeshGuard.ControlPlane/MeshGuard.ControlPlane.csproj"
  "proxy/src/MeshGuard.Proxy/MeshGuard.Proxy.csproj"
  "control-plane/src/MeshGuard.Ctl/MeshGuard.Ctl.csproj"
  "samples/MeshGuard.SampleService/MeshGuard.SampleService.csproj"
)

build() {
  build_programs build/programs.slnf
  build_aot
}

# build_programs SOLUTION: one compile of SOLUTION (the programs, each project with its RID set in the project, so the
# libraries are built once; the tests' run compiles the whole solution here), then framework-dependent single-file
# executables bundled from that build: one file per program in out/bin.
build_programs() {
  mkdir -p "$BIN"
  dotnet build "$1" -c Release --nologo -v quiet || return 1
  for project in "${EXES[@]}"; do
    dotnet publish "$project" -c Release --no-build -p:PublishSingleFile=true -o "$BIN" --nologo -v quiet || return 1
  done
  rm -f "$BIN"/*.pdb
  echo "built: $(cd "$BIN" && ls meshguard-cp meshguard-proxy meshctl meshguard-sample | tr '\n' ' ')"
}

needs_build() {
  [ ! -x "$BIN/meshctl" ] && return 0
  # Rebuild when any source is newer than the last published binary.
  [ -n "$(find proxy control-plane samples build Directory.Build.props -newer "$BIN/meshctl" \
          \( -name '*.cs' -o -name '*.csproj' -o -name '*.proto' -o -name '*.props' \) -not -path '*/obj/*' -not -path '*/bin/*' -print -quit)" ]
}

# apt_install COMMAND:PACKAGE ...: installs the packages whose command is missing (and that are not installed).
apt_install() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] \
      || dpkg-query -W -f='${Status}' "${pair#*:}" 2>/dev/null | grep -q "ok installed" || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      for attempt in 1 2 3 4 5; do
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" && break
        echo "apt-get busy or failed (attempt $attempt); retrying" >&2; sleep 5
      done
    else
      echo "missing prerequisites: ${missing[*]} (install them, or run as root)" >&2; exit 1
    fi
  fi
}

# Debian's tools for building and running the images: no registry is pulled from (build/images/images.sh).
IMAGE_PREREQS=(mmdebstrap:mmdebstrap buildah:buildah podman:podman runc:runc)
install_image_prereqs() {
  apt_install "${IMAGE_PREREQS[@]}"
}

images() {
  install_image_prereqs
  if needs_build || [ ! -x "$ROOT/out/aot/meshguard-proxy" ]; then build; fi
  build/images/images.sh "$@"
}

# Real third-party peers for the protocol tests: python3-grpcio (gRPC), python3-websockets, redis-server/redis-cli;
# testssl.sh scans every TLS port; python3-h2 floods with rapid resets; ip, iptables and setpriv build the
# network namespaces of the transparent-redirect test; kubectl (kubernetes-client) builds manifests/ with kustomize;
# etcd (etcd-server) is the replicas' shared store; chromium is the browser the console test drives (Playwright
# uses it as it is: no browser is downloaded); mmdebstrap, buildah, podman and runc build and run the images;
# strace shows which files a starting sidecar opens.
install_test_prereqs() {
  apt_install openssl:openssl curl:curl gcc:gcc python3-grpcio:python3-grpcio python3-websockets:python3-websockets \
    redis-server:redis-server redis-cli:redis-tools testssl:testssl.sh python3-h2:python3-h2 \
    ip:iproute2 iptables:iptables setpriv:util-linux kubectl:kubernetes-client etcd:etcd-server postgres:postgresql \
    chromium:chromium strace:strace "${IMAGE_PREREQS[@]}"
}

run_tests() {
  install_test_prereqs
  local results="$ROOT/out/test-results"
  rm -rf "$results"; mkdir -p "$results"
  # One compile of the whole solution (programs, tests, load-test tools), the JIT programs bundled from it; the
  # NativeAOT sidecar and the images are made at the head of lane two, while lane one's tests run.
  if ! build_programs MeshGuard.sln; then
    echo "FAILED: the build"; echo "0 passed, 1 failed, 0 skipped"; return 1
  fi
  local status=0 project
  # One run per test project, each with its own results file: trx files named by the second they were
  # written overwrite each other when two projects finish together, and a count must never lose a project.
  local fuzz=tests/MeshGuard.Fuzz.Tests/MeshGuard.Fuzz.Tests.csproj functional=tests/MeshGuard.FunctionalTests/MeshGuard.FunctionalTests.csproj
  local unit=()
  for project in tests/*/*.Tests.csproj; do [ "$project" = "$fuzz" ] || unit+=("$project"); done
  # unit_tests [ARGS]: every unit test project; without a filter, the short fuzz run (one core for half a
  # minute) goes beside the others, which are quick. Fails when any failed.
  unit_tests() {
    local s=0 fuzz_pid fuzz_status=0 project
    if [ $# -eq 0 ]; then
      run_test_project "$results" "$BIN" "$fuzz" > "$results/fuzz-tests.log" 2>&1 &
      fuzz_pid=$!
      for project in "${unit[@]}"; do run_test_project "$results" "$BIN" "$project" || s=$?; done
      wait "$fuzz_pid" || fuzz_status=$?
      cat "$results/fuzz-tests.log"
      [ "$fuzz_status" -eq 0 ] || s=$fuzz_status
    else
      for project in "${unit[@]}" "$fuzz"; do run_test_project "$results" "$BIN" "$project" "$@" || s=$?; done
    fi
    return "$s"
  }
  # The functional suite runs twice: with the JIT sidecar, and once more with the NativeAOT one (both builds ship).
  # Tests whose subject is the control plane alone run in the first pass only (Subject=ControlPlaneStore, its store;
  # Subject=ReviewerConsole, the console in a browser; Subject=ControlPlane, its attestation, webhook, console pages and
  # policy sources), as do the container tests (Subject=Containers: the images hold the NativeAOT sidecar already) and
  # the tests of what MeshGuard.Spiffe's TLS options and SVID verification refuse or offer (Subject=SpiffeTls: the
  # handshake refusals and the TLS scan of the sidecar's and the control plane's ports; the same library code in both
  # builds, while every other test runs the admitted mTLS handshake with the NativeAOT sidecar too).
  # The tests mostly wait on processes they started and on their timeouts: with two lanes the two cores still stood
  # idle 30-70 % of the functional part (vmstat), so the work goes in three lanes at the same time, each about a third
  # of it. Lane one: the unit tests, the JIT sidecar under the quicker classes, then the TLS scan. Lane two: the
  # NativeAOT sidecar's build, its pass (the images, which hold that sidecar, are made beside it), then the container
  # tests. Lane three: the control plane's own tests, then the JIT sidecar under the classes that wait longest
  # (control-plane restarts, SVID lifetimes, replicas, etcd), then the NativeAOT one under the two longest of them.
  # Each lane takes its own third of the ports below the ephemeral range, so no lane can bind a port another has just
  # probed free.
  if [ $# -eq 0 ]; then
    local aotbin="$ROOT/out/aot-bin" f lane2_pid lane3_pid lane2_status=0 lane3_status=0 low=10000 ephemeral third subject not_once=""
    local long quick
    for subject in ControlPlane ReviewerConsole Containers SpiffeTls; do
      not_once+="${not_once:+&}Subject!=$subject"
    done
    # any_class CLASS...: a filter for the tests of those classes; no_class CLASS...: for every other test.
    any_class() { local c out=""; for c; do out+="${out:+|}FullyQualifiedName~.$c."; done; echo "$out"; }
    no_class() { local c out=""; for c; do out+="${out:+&}FullyQualifiedName!~.$c."; done; echo "$out"; }
    local long_classes=(EtcdStoreTests ServiceAccountAttestationTests RootRotationTests ControlPlaneFaultTests ControlPlaneReplicasTests)
    # The NativeAOT sidecar under the two longest of those goes to lane three as well, once lane two has built it.
    local aot_long_classes=(ServiceAccountAttestationTests RootRotationTests)
    long=$(any_class "${long_classes[@]}"); quick=$(no_class "${long_classes[@]}")
    local aot_long aot_quick
    aot_long=$(any_class "${aot_long_classes[@]}"); aot_quick=$(no_class "${aot_long_classes[@]}")
    rm -f "$results/aot-built" "$results/aot-failed"
    local twice="$not_once&Subject!=ControlPlaneStore" tls_scan
    tls_scan=$(any_class TlsScanTests)
    ephemeral=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    # An ephemeral range that starts low leaves the ports above it (LocalMesh.FreePorts does the same).
    if [ "$ephemeral" -le 12000 ]; then low=$(cut -f2 /proc/sys/net/ipv4/ip_local_port_range); low=$((low + 1)); ephemeral=65536; fi
    third=$(( (ephemeral - low) / 3 ))
    rm -rf "$aotbin"; mkdir -p "$aotbin"
    for f in "$BIN"/*; do ln -s "$f" "$aotbin/"; done
    rm "$aotbin/meshguard-proxy"; ln -s "$ROOT/out/aot/meshguard-proxy" "$aotbin/meshguard-proxy"
    (
      export MESHGUARD_LOCAL_PORTS="$((low + third))-$((low + 2 * third - 1))"
      lane=0 images_pid=""
      if build_aot; then
        touch "$results/aot-built"
        # The container tests (Subject=Containers, at this lane's end) run the images of this build; a failed image
        # build fails the run. It runs at the lowest CPU and I/O priority: the NativeAOT pass beside it has timing to
        # keep (a root rotation, a rapid-reset flood), the image build only has to be done by the pass's end.
        nice -n 19 ionice -c 3 build/images/images.sh > "$results/images.log" 2>&1 &
        images_pid=$!
        TRX_NAME=functional-aot-sidecar run_test_project "$results" "$aotbin" "$functional" --filter "$twice&$aot_quick" || lane=$?
      else
        touch "$results/aot-failed"
        echo "FAILED: the NativeAOT build"; lane=1
      fi
      if [ -n "$images_pid" ]; then
        wait "$images_pid" || { lane=$?; echo "FAILED: build/images/images.sh exited $lane"; }
        cat "$results/images.log"
      fi
      TRX_NAME=functional-containers run_test_project "$results" "$BIN" "$functional" --filter "Subject=Containers" || lane=$?
      exit "$lane"
    ) > "$results/functional-lane-two.log" 2>&1 &
    lane2_pid=$!
    (
      export MESHGUARD_LOCAL_PORTS="$((low + 2 * third))-$((ephemeral - 1))"
      lane=0
      # The control plane's own tests first, while the NativeAOT build and the unit tests' fuzzing take the cores: the
      # long classes after them keep time (SVID lifetimes, restarts under load).
      TRX_NAME=functional-control-plane run_test_project "$results" "$BIN" "$functional" \
        --filter "(Subject=ControlPlane|Subject=ReviewerConsole|Subject=SpiffeTls)&$(no_class TlsScanTests)" || lane=$?
      TRX_NAME=functional-jit-long run_test_project "$results" "$BIN" "$functional" --filter "($not_once)&($long)" || lane=$?
      # Lane two says when its NativeAOT build is done (or failed: it reports that); bounded, should lane two die.
      for _ in $(seq 1800); do [ -e "$results/aot-built" ] || [ -e "$results/aot-failed" ] && break; sleep 1; done
      if [ -e "$results/aot-built" ]; then
        TRX_NAME=functional-aot-long run_test_project "$results" "$aotbin" "$functional" --filter "($twice)&($aot_long)" || lane=$?
      fi
      exit "$lane"
    ) > "$results/functional-lane-three.log" 2>&1 &
    lane3_pid=$!
    export MESHGUARD_LOCAL_PORTS="$low-$((low + third - 1))"
    unit_tests || status=$?
    run_test_project "$results" "$BIN" "$functional" --filter "$not_once&$quick" || status=$?
    TRX_NAME=functional-tls-scan run_test_project "$results" "$BIN" "$functional" --filter "$tls_scan" || status=$?
    unset MESHGUARD_LOCAL_PORTS
    wait "$lane3_pid" || lane3_status=$?
    wait "$lane2_pid" || lane2_status=$?
    cat "$results/functional-lane-three.log" "$results/functional-lane-two.log"
    [ "$lane3_status" -eq 0 ] || status=$lane3_status
    [ "$lane2_status" -eq 0 ] || status=$lane2_status
  else
    unit_tests "$@" || status=$?
    run_test_project "$results" "$BIN" "$functional" "$@" || status=$?
  fi
  # The closing line CI reads, summed from the real results of every test assembly.
  local passed=0 failed=0 skipped=0 p f t e
  for trx in "$results"/*.trx; do
    [ -f "$trx" ] || continue
    p=$(grep -o '<Counters [^>]*' "$trx" | grep -o ' passed="[0-9]*"' | grep -o '[0-9]*')
    f=$(grep -o '<Counters [^>]*' "$trx" | grep -o ' failed="[0-9]*"' | grep -o '[0-9]*')
    t=$(grep -o '<Counters [^>]*' "$trx" | grep -o ' total="[0-9]*"' | grep -o '[0-9]*')
    e=$(grep -o '<Counters [^>]*' "$trx" | grep -o ' executed="[0-9]*"' | grep -o '[0-9]*')
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${t:-0} - ${e:-0}))
  done
  # Name every failed test just above the totals, where a CI log's tail shows it, with the first lines of its
  # message and stack: a CI log may be all there is to go on.
  report_failures "$results"/*.trx
  if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; echo "FAILED: the test runner exited $status outside any test"; fi
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
}

# run_test_project RESULTS BIN PROJECT [dotnet test arguments...]: one test assembly against the executables in BIN,
# its own results file (RESULTS/PROJECT.trx, or RESULTS/$TRX_NAME.trx).
run_test_project() {
  local results=$1 bin=$2 project=$3; shift 3
  MESHGUARD_BIN="$bin" dotnet test "$project" -c Release --no-build --nologo \
    --logger "trx;LogFileName=${TRX_NAME:-$(basename "$project" .csproj)}.trx" --results-directory "$results" \
    --logger "console;verbosity=normal" "$@"
}

report_failures() {
  [ $# -gt 0 ] && [ -f "$1" ] || return 0
  # When python3 cannot read every results file, its partial report is dropped and grep names the failures once.
  local report
  if report=$(python3 - "$@" 2>/dev/null <<'PY'
import sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
for path in sys.argv[1:]:
    for result in ET.parse(path).getroot().iterfind(".//t:UnitTestResult", ns):
        if result.get("outcome") != "Failed":
            continue
        print(f"FAILED: {result.get('testName')} ({path.rsplit('/', 1)[-1]})")
        for tag in ("Message", "StackTrace"):
            node = result.find(f".//t:ErrorInfo/t:{tag}", ns)
            for line in (node.text or "").strip().splitlines()[:12] if node is not None else []:
                print(f"    {line.rstrip()}")
PY
  ); then
    [ -z "$report" ] || echo "$report"
  else
    grep -ho '<UnitTestResult [^>]*outcome="Failed"' "$@" | sed -E 's/.*testName="([^"]*)".*/FAILED: \1/'
  fi
}

micro_bench() {
  local artifacts="$ROOT/out/bench"
  rm -rf "$artifacts"
  dotnet run -c Release --project loadtests/MeshGuard.Benchmarks -- --filter "${1:-*}" --job short --artifacts "$artifacts"
  mkdir -p loadtests/results
  for report in "$artifacts"/results/*-report-github.md; do
    [ -f "$report" ] || continue
    name=$(basename "$report" | sed 's/^MeshGuard\.Benchmarks\.//; s/-report-github\.md$//')
    { echo "# $name ($(date -u +%Y-%m-%d), $(nproc) cores, ./meshguard.sh bench micro)"; echo; cat "$report"; } > "loadtests/results/$name.md"
    echo "wrote loadtests/results/$name.md"
  done
}

peer_bench() {
  apt_install wrk:wrk h2load:nghttp2-client nginx:nginx haproxy:haproxy openssl:openssl curl:curl python3:python3 perf:linux-perf
  if needs_build; then build; fi
  loadtests/scenarios/peers.sh "$@"
}

grpc_bench() {
  apt_install h2load:nghttp2-client curl:curl python3-grpcio:python3-grpcio haproxy:haproxy openssl:openssl
  if needs_build; then build; fi
  loadtests/scenarios/grpc.sh "$@"
}

# The sidecar as a NativeAOT executable (needs a C toolchain: gcc or clang), in out/aot/.
build_aot() {
  apt_install gcc:gcc
  dotnet publish proxy/src/MeshGuard.Proxy/MeshGuard.Proxy.csproj -c Release -r linux-x64 --self-contained -p:PublishAot=true \
    -p:DebugType=none -p:StripSymbols=true -o "$ROOT/out/aot" --nologo -v quiet
  echo "built: out/aot/meshguard-proxy (NativeAOT)"
}

# AFL++ drives each harness of tests/MeshGuard.Fuzz over the target assemblies that SharpFuzz instruments,
# starting from tests/fuzz/corpus/TARGET. A crash found becomes a regression input there once fixed.
fuzz() {
  local seconds=${1:-300}; [ $# -gt 0 ] && shift
  local targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(spiffe-id policy snapshot snapshot-content flow-log request-target)
  apt_install afl-fuzz:afl++
  local out="$ROOT/out/fuzz" tools="$ROOT/out/tools" target found=0
  [ -x "$tools/sharpfuzz" ] || dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" >/dev/null
  rm -rf "$out/bin"
  dotnet publish tests/MeshGuard.Fuzz/MeshGuard.Fuzz.csproj -c Release -o "$out/bin" --nologo -v quiet
  for assembly in MeshGuard.Spiffe MeshGuard.Policy MeshGuard.Contracts MeshGuard.FlowLog YamlDotNet; do
    "$tools/sharpfuzz" "$out/bin/$assembly.dll" >/dev/null
  done
  for target in "${targets[@]}"; do
    rm -rf "$out/runs/$target"; mkdir -p "$out/runs"
    echo "fuzz $target for ${seconds}s"
    AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 \
      afl-fuzz -i "tests/fuzz/corpus/$target" -o "$out/runs/$target" -V "$seconds" -t 5000 -m none \
      -- dotnet "$out/bin/meshguard-fuzz.dll" "$target" afl > "$out/runs/$target.log" 2>&1 || true
    local crashes; crashes=$(find "$out/runs/$target/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
    local stats="$out/runs/$target/default/fuzzer_stats"
    echo "  $(awk '/^execs_done/ {print $3}' "$stats" 2>/dev/null) inputs, corpus grew to $(awk '/^corpus_count/ {print $3}' "$stats" 2>/dev/null), $crashes crash(es)"
    found=$((found + crashes))
  done
  [ "$found" -eq 0 ]
}

case "${1:-}" in
  build) build ;;
  build-aot) build_aot ;;
  demo)
    shift
    if [[ " $* " == *" --containers "* ]]; then
      images --no-sbom
    elif needs_build; then
      build
    fi
    exec "$BIN/meshctl" demo --policies "$ROOT/samples/policies" "$@" ;;
  images) shift; images "$@" ;;
  test) shift; run_tests "$@" ;;
  lint) dotnet format MeshGuard.sln --verify-no-changes ;;
  fuzz) shift; fuzz "$@" ;;
  bench)
    shift
    what=${1:-all}; [ $# -gt 0 ] && shift
    case "$what" in
      micro) micro_bench "$@" ;;
      peers) peer_bench "$@" ;;
      grpc) grpc_bench "$@" ;;
      all) peer_bench; grpc_bench; micro_bench ;;
      *) echo "usage: $0 bench [peers [ROUNDS] [DURATION_S] | grpc [ROUNDS] [DURATION_S] | micro [FILTER]]" >&2; exit 2 ;;
    esac ;;
  *) echo "usage: $0 build | build-aot | demo [--serve | --containers] | images [--no-sbom] | test | lint | fuzz [SECONDS] [TARGET...] | bench [peers|grpc|micro]" >&2; exit 2 ;;
esac
