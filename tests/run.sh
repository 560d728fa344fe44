#!/usr/bin/env bash
# Runs vigil's test suites and counts every test case as one pass or fail.
#
# Usage: tests/run.sh [SUITE...]
#   SUITE: unit, fuzz, raw, e2e (all of e2e/*), e2e/paho, e2e/node, e2e/bench,
#          e2e/shell, e2e/crash, e2e/tls, e2e/audit, e2e/capture, e2e/siem,
#          e2e/sniff, e2e/engine, mqttsn, coap, udp-break, sim,
#          io-threads (raw, e2e/paho and e2e/crash with two I/O threads).
#          Default: all of them.
# Environment:
#   VIGIL_TEST_BROKER   vigil (default) or mosquitto (reference broker)
#   VIGIL               vigil binary (default build-asan/vigil)
#   VIGIL_TEST_LOG_DIR  where logs go (default: a new /tmp/vigil-check.* dir)
#   VIGIL_TEST_FILTER   run only cases whose name contains this text
#   VIGIL_FUZZ_SECONDS  fuzzing time per harness (default 30)
# The last line is "N passed, N failed"; the exit status is 1 if any failed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
PY=/usr/bin/python3
ASAN_DIR=${VIGIL_ASAN_DIR:-$ROOT/build-asan}
FUZZ_DIR=${VIGIL_FUZZ_DIR:-$ROOT/build-fuzz}
FUZZ_SECONDS=${VIGIL_FUZZ_SECONDS:-30}
UNIT_TIMEOUT=120  # seconds per unit test executable
export VIGIL=${VIGIL:-$ASAN_DIR/vigil}
export VIGIL_TEST_BROKER=${VIGIL_TEST_BROKER:-vigil}
LOG_DIR=${VIGIL_TEST_LOG_DIR:-$(mktemp -d /tmp/vigil-check.XXXXXX)}
mkdir -p "$LOG_DIR"
export VIGIL_TEST_LOG_DIR=$LOG_DIR
RESULTS=$LOG_DIR/results.tsv
: >"$RESULTS"
export VIGIL_TEST_RESULTS=$RESULTS

ALL_SUITES=(unit fuzz raw e2e/paho e2e/node e2e/shell e2e/crash e2e/tls e2e/audit e2e/capture e2e/bench
            e2e/siem e2e/sniff e2e/engine mqttsn coap udp-break sim io-threads)

# Appends one result line: kind (pass|fail|skip), name, log path.
record() {
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"
    case $1 in
        pass) echo "PASS $2" ;;
        fail) echo "FAIL $2 (log: $3)" ;;
    esac
}

count_lines() {
    grep -c "^$1"$'\t' "$RESULTS" || true
}

# Records a failure for a suite whose prerequisite is missing.
missing() {
    local suite=$1 what=$2 log=$LOG_DIR/${1//\//-}.log
    echo "$what" >"$log"
    record fail "$suite: $what" "$log"
}

# Runs a suite command that records its own cases; adds a failure when it
# exits non-zero without recording one, times out, or records nothing.
run_recording_suite() {
    local suite=${VIGIL_TEST_SUITE_PREFIX:-}$1 limit=$2
    shift 2
    local log=$LOG_DIR/${suite//\//-}.out
    local before_fail before_total after_fail after_total rc
    before_fail=$(count_lines fail)
    before_total=$(wc -l <"$RESULTS")
    echo "== $suite (log: $log)"
    timeout --kill-after=20 "$limit" "$@" 2>&1 | tee "$log" | grep -E '^(FAIL|SKIP) '
    rc=${PIPESTATUS[0]}
    after_fail=$(count_lines fail)
    after_total=$(wc -l <"$RESULTS")
    if ((rc == 124 || rc == 137)); then
        record fail "$suite: timed out after $limit s" "$log"
    elif ((rc != 0 && after_fail == before_fail)); then
        record fail "$suite: exited with status $rc" "$log"
    elif ((after_total == before_total)); then
        record fail "$suite: ran no test case" "$log"
    fi
}

broker_ready() {
    local suite=$1
    if [[ $VIGIL_TEST_BROKER == vigil && ! -x $VIGIL ]]; then
        missing "$suite" "vigil binary $VIGIL not found; run make asan"
        return 1
    fi
    if [[ $VIGIL_TEST_BROKER == mosquitto && ! -x /usr/sbin/mosquitto ]]; then
        missing "$suite" "mosquitto not installed; run make deps"
        return 1
    fi
    return 0
}

suite_unit() {
    local exes=() exe name log rc
    if [[ ! -d $ASAN_DIR ]]; then
        missing unit "$ASAN_DIR not found; run make asan"
        return
    fi
    for exe in "$ASAN_DIR"/test_*; do
        [[ -f $exe && -x $exe ]] && exes+=("$exe")
    done
    if ((${#exes[@]} == 0)); then
        missing unit "no test_* executables in $ASAN_DIR"
        return
    fi
    mkdir -p "$LOG_DIR/unit"
    echo "== unit (${#exes[@]} executables)"
    for exe in "${exes[@]}"; do
        name=$(basename "$exe")
        log=$LOG_DIR/unit/$name.log
        (cd "$LOG_DIR/unit" && timeout --kill-after=10 "$UNIT_TIMEOUT" "$exe") >"$log" 2>&1
        rc=$?
        if ((rc == 124 || rc == 137)); then
            echo "tests/run.sh: killed after $UNIT_TIMEOUT s" >>"$log"
            record fail "unit/$name: timed out after $UNIT_TIMEOUT s" "$log"
        fi
        record_cmocka "$name" "$log" "$rc"
    done
}

# Counts each cmocka test in an executable's output; a crash or non-zero
# exit that no test explains is one more failure.
record_cmocka() {
    local name=$1 log=$2 rc=$3 test failed=0 any=0
    local -A ok=() skipped=()
    while read -r test; do ok[$test]=1; done < <(sed -n 's/^\[       OK \] //p' "$log")
    # A test that skips itself (its data is absent) is neither passed nor failed.
    while read -r test; do skipped[$test]=1; done < <(sed -n 's/^\[  SKIPPED \] //p' "$log")
    while read -r test; do
        [[ -z $test ]] && continue
        any=1
        if [[ -n ${skipped[$test]:-} ]]; then
            record skip "unit/$name $test (skipped: see its log)" "$log"
        elif [[ -n ${ok[$test]:-} ]]; then
            record pass "unit/$name $test" "$log"
        else
            record fail "unit/$name $test" "$log"
            failed=1
        fi
    done < <(sed -n 's/^\[ RUN      \] //p' "$log")
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
        record fail "unit/$name: sanitizer error" "$log"
    elif ((rc != 0 && rc != 124 && rc != 137 && failed == 0)); then
        record fail "unit/$name: exited with status $rc" "$log"
    elif ((any == 0)); then
        record pass "unit/$name" "$log"
    fi
}

suite_fuzz() {
    local exes=() exe
    if [[ ! -d $FUZZ_DIR ]]; then
        missing fuzz "$FUZZ_DIR not found; run make fuzz"
        return
    fi
    for exe in "$FUZZ_DIR"/fuzz_*; do
        [[ -f $exe && -x $exe ]] && exes+=("$exe")
    done
    if ((${#exes[@]} == 0)); then
        missing fuzz "no fuzz_* harnesses in $FUZZ_DIR"
        return
    fi
    mkdir -p "$LOG_DIR/fuzz"
    echo "== fuzz (${#exes[@]} harnesses, $FUZZ_SECONDS s each)"
    for exe in "${exes[@]}"; do
        fuzz_one "$exe"
    done
}

# Replays a harness's corpus, then fuzzes it for FUZZ_SECONDS. New inputs go
# to a copy of the corpus so the repository is never modified.
fuzz_one() {
    local exe=$1 harness name corpus work log inputs=() rc extra=()
    harness=$(basename "$exe")
    name=${harness#fuzz_}
    corpus=$ROOT/fuzz/corpus/$name
    work=$(mktemp -d "$LOG_DIR/fuzz/$name.corpus.XXXXXX")
    mkdir -p "$LOG_DIR/fuzz/$name.artifacts"
    [[ -f $ROOT/fuzz/$name.dict ]] && extra+=("-dict=$ROOT/fuzz/$name.dict")

    log=$LOG_DIR/fuzz/$name.replay.log
    if [[ ! -d $corpus ]]; then
        echo "corpus directory $corpus not found" >"$log"
        record fail "fuzz/$name corpus replay" "$log"
    else
        cp -R "$corpus"/. "$work"/
        while IFS= read -r -d '' f; do inputs+=("$f"); done < <(find "$work" -type f -print0)
        if ((${#inputs[@]} == 0)); then
            echo "corpus directory $corpus is empty" >"$log"
            record fail "fuzz/$name corpus replay" "$log"
        else
            timeout --kill-after=10 600 "$exe" -timeout=10 -rss_limit_mb=2048 \
                "-artifact_prefix=$LOG_DIR/fuzz/$name.artifacts/" "${inputs[@]}" >"$log" 2>&1
            rc=$?
            if ((rc == 0)); then
                record pass "fuzz/$name corpus replay (${#inputs[@]} inputs)" "$log"
            else
                record fail "fuzz/$name corpus replay" "$log"
            fi
        fi
    fi

    log=$LOG_DIR/fuzz/$name.run.log
    timeout --kill-after=10 $((FUZZ_SECONDS + 120)) "$exe" -max_total_time="$FUZZ_SECONDS" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "-artifact_prefix=$LOG_DIR/fuzz/$name.artifacts/" "${extra[@]}" "$work" >"$log" 2>&1
    rc=$?
    if ((rc == 0)); then
        record pass "fuzz/$name ${FUZZ_SECONDS}s" "$log"
    else
        record fail "fuzz/$name ${FUZZ_SECONDS}s (status $rc)" "$log"
    fi
}

suite_raw() {
    broker_ready raw || return
    run_recording_suite raw 900 "$PY" "$ROOT/tests/raw/run.py"
}

suite_paho() {
    broker_ready e2e/paho || return
    if ! "$PY" -c 'import paho.mqtt.client' 2>/dev/null; then
        missing e2e/paho "python3-paho-mqtt not importable by $PY; run make deps"
        return
    fi
    run_recording_suite e2e/paho 900 "$PY" "$ROOT/tests/e2e/paho/run.py"
}

suite_node() {
    broker_ready e2e/node || return
    if ! command -v node >/dev/null; then
        missing e2e/node "node not found; run make deps"
        return
    fi
    if [[ ! -f $ROOT/tests/e2e/node_modules/mqtt/package.json ]]; then
        missing e2e/node "tests/e2e/node_modules/mqtt missing; run make deps"
        return
    fi
    run_recording_suite e2e/node 600 "$PY" "$ROOT/tests/lib/with_broker.py" --suite e2e/node -- \
        node "$ROOT/tests/e2e/node/run.mjs"
}

suite_shell() {
    broker_ready e2e/shell || return
    if ! command -v mosquitto_pub >/dev/null || ! command -v mosquitto_sub >/dev/null; then
        missing e2e/shell "mosquitto_pub or mosquitto_sub not found; run make deps"
        return
    fi
    run_recording_suite e2e/shell 600 "$PY" "$ROOT/tests/e2e/shell/run.py"
}

suite_crash() {
    broker_ready e2e/crash || return
    run_recording_suite e2e/crash 600 "$PY" "$ROOT/tests/e2e/crash/run.py"
}

# The raw, paho and crash suites again with two I/O threads, which the
# default does not start on a two-CPU machine; case names gain "io2/".
suite_io_threads() {
    local s
    for s in raw e2e/paho e2e/crash; do
        VIGIL_IO_THREADS=2 VIGIL_TEST_SUITE_PREFIX=io2/ run_suite "$s"
    done
}

suite_tls() {
    local tool
    broker_ready e2e/tls || return
    for tool in openssl mosquitto_pub mosquitto_sub node unshare; do
        if ! command -v "$tool" >/dev/null; then
            missing e2e/tls "$tool not found; run make deps"
            return
        fi
    done
    if ! "$PY" -c 'import paho.mqtt.client' 2>/dev/null; then
        missing e2e/tls "python3-paho-mqtt not importable by $PY; run make deps"
        return
    fi
    if [[ ! -f $ROOT/tests/e2e/node_modules/mqtt/package.json ]]; then
        missing e2e/tls "tests/e2e/node_modules/mqtt missing; run make deps"
        return
    fi
    run_recording_suite e2e/tls 900 "$PY" "$ROOT/tests/e2e/tls/run.py"
}

suite_audit() {
    broker_ready e2e/audit || return
    run_recording_suite e2e/audit 300 "$PY" "$ROOT/tests/e2e/audit/run.py"
}

# Passive analysis of the labelled captures; the suite records its cases
# as skipped when the captures are absent.
suite_capture() {
    if [[ ! -x $VIGIL ]]; then
        missing e2e/capture "vigil binary $VIGIL not found; run make asan"
        return
    fi
    run_recording_suite e2e/capture 600 "$PY" "$ROOT/tests/e2e/capture/run.py"
}

# SIEM export through `vigil siem-send` to a real rsyslogd with its TLS
# driver (rsyslog-openssl).
suite_siem() {
    local tool
    if [[ ! -x $VIGIL ]]; then
        missing e2e/siem "vigil binary $VIGIL not found; run make asan"
        return
    fi
    for tool in /usr/sbin/rsyslogd /usr/bin/openssl; do
        if [[ ! -x $tool ]]; then
            missing e2e/siem "$tool not found; run make deps"
            return
        fi
    done
    if [[ -z $(find /usr/lib -name lmnsd_ossl.so -print -quit 2>/dev/null) ]]; then
        missing e2e/siem "rsyslog's OpenSSL driver lmnsd_ossl.so not found; run make deps"
        return
    fi
    run_recording_suite e2e/siem 300 "$PY" "$ROOT/tests/e2e/siem/run.py"
}

# vigil serve --sniff lo in network namespaces the cases create, beside a
# mosquitto with a password file; needs root for `ip netns`.
suite_sniff() {
    local tool
    if [[ ! -x $VIGIL ]]; then
        missing e2e/sniff "vigil binary $VIGIL not found; run make asan"
        return
    fi
    for tool in /usr/sbin/mosquitto /usr/bin/mosquitto_pub /usr/bin/mosquitto_passwd; do
        if [[ ! -x $tool ]]; then
            missing e2e/sniff "$tool not found; run make deps"
            return
        fi
    done
    for tool in ip ss setpriv; do
        if ! command -v "$tool" >/dev/null; then
            missing e2e/sniff "$tool not found; install iproute2 and util-linux"
            return
        fi
    done
    if [[ $(id -u) -ne 0 ]]; then
        missing e2e/sniff "creating network namespaces with ip netns needs root"
        return
    fi
    run_recording_suite e2e/sniff 300 "$PY" "$ROOT/tests/e2e/sniff/run.py"
}

# The security engine inside vigil serve, with `vigil sim` as the benign
# fleet and mosquitto_pub, paho and raw sockets as attackers.
suite_engine() {
    if [[ ! -x $VIGIL ]]; then
        missing e2e/engine "vigil binary $VIGIL not found; run make asan"
        return
    fi
    if [[ ! -x /usr/bin/mosquitto_pub ]]; then
        missing e2e/engine "mosquitto_pub not found; run make deps"
        return
    fi
    if ! "$PY" -c 'import paho.mqtt.client' 2>/dev/null; then
        missing e2e/engine "python3-paho-mqtt not found; run make deps"
        return
    fi
    run_recording_suite e2e/engine 600 "$PY" "$ROOT/tests/e2e/engine/run.py"
}

# vigil bench: each scenario briefly against a vigil the suite starts, and
# the raw relay and the side-by-side runner once; fields only, never timing.
suite_bench() {
    if [[ ! -x $VIGIL ]]; then
        missing e2e/bench "vigil binary $VIGIL not found; run make asan"
        return
    fi
    run_recording_suite e2e/bench 600 "$PY" "$ROOT/tests/e2e/bench/run.py"
}

# The MQTT-SN gateway: end-to-end cases with snclient.py and paho (DTLS
# through build-asan/sn_dtls_client), then the raw-datagram cases.
suite_mqttsn() {
    if [[ ! -x $VIGIL ]]; then
        missing mqttsn "vigil binary $VIGIL not found; run make asan"
        return
    fi
    if [[ ! -x $ASAN_DIR/sn_dtls_client ]]; then
        missing mqttsn "$ASAN_DIR/sn_dtls_client not found; run make asan"
        return
    fi
    if ! "$PY" -c 'import paho.mqtt.client' 2>/dev/null; then
        missing mqttsn "python3-paho-mqtt not importable by $PY; run make deps"
        return
    fi
    run_recording_suite mqttsn 600 "$PY" "$ROOT/tests/e2e/mqttsn/run.py"
    run_recording_suite mqttsn-raw 300 "$PY" "$ROOT/tests/raw/mqttsn_raw.py"
}

# The CoAP front end: libcoap's coap-client, npm coap and paho end to end,
# then the raw-datagram cases (the slowest waits about 90 s for a
# confirmable notification to time out).
suite_coap() {
    local tool
    if [[ ! -x $VIGIL ]]; then
        missing coap "vigil binary $VIGIL not found; run make asan"
        return
    fi
    for tool in /usr/bin/coap-client-notls /usr/bin/coap-client-openssl node; do
        if ! command -v "$tool" >/dev/null; then
            missing coap "$tool not found; run make deps"
            return
        fi
    done
    if [[ ! -f $ROOT/tests/e2e/node_modules/coap/package.json ]]; then
        missing coap "tests/e2e/node_modules/coap missing; run make deps"
        return
    fi
    if ! "$PY" -c 'import paho.mqtt.client' 2>/dev/null; then
        missing coap "python3-paho-mqtt not importable by $PY; run make deps"
        return
    fi
    run_recording_suite coap 600 "$PY" "$ROOT/tests/e2e/coap/run.py"
    run_recording_suite coap-raw 600 "$PY" "$ROOT/tests/raw/coap_raw.py"
}

# Hostile input across both UDP front ends: non-UTF-8 topics, empty tokens,
# wills on DTLS loss, client ids and PSKs tied to devices, peer-table
# exhaustion (two cases start a hub with a small peer table).
suite_udp_break() {
    if [[ ! -x $VIGIL || ! -x $ASAN_DIR/sn_dtls_client ]]; then
        missing udp-break "vigil or $ASAN_DIR/sn_dtls_client not found; run make asan"
        return
    fi
    run_recording_suite udp-break 900 "$PY" "$ROOT/tests/raw/break_udp.py"
}

# vigil sim's mixed fleet (MQTT, CoAP and MQTT-SN over DTLS and plain UDP)
# against a vigil serve each case starts, with a paho subscriber.
suite_sim() {
    if [[ ! -x $VIGIL ]]; then
        missing sim "vigil binary $VIGIL not found; run make asan"
        return
    fi
    if ! "$PY" -c 'import paho.mqtt.client' 2>/dev/null; then
        missing sim "python3-paho-mqtt not importable by $PY; run make deps"
        return
    fi
    run_recording_suite sim 300 "$PY" "$ROOT/tests/e2e/sim/run.py"
}

run_suite() {
    case $1 in
        unit) suite_unit ;;
        fuzz) suite_fuzz ;;
        raw) suite_raw ;;
        e2e) for s in paho node shell crash tls audit capture siem sniff engine bench; do run_suite "e2e/$s"; done ;;
        e2e/paho) suite_paho ;;
        e2e/node) suite_node ;;
        e2e/shell) suite_shell ;;
        e2e/crash) suite_crash ;;
        e2e/tls) suite_tls ;;
        e2e/capture) suite_capture ;;
        e2e/audit) suite_audit ;;
        e2e/siem) suite_siem ;;
        e2e/sniff) suite_sniff ;;
        e2e/engine) suite_engine ;;
        e2e/bench) suite_bench ;;
        mqttsn) suite_mqttsn ;;
        coap) suite_coap ;;
        udp-break) suite_udp_break ;;
        sim) suite_sim ;;
        io-threads) suite_io_threads ;;
        *)
            echo "tests/run.sh: unknown suite '$1'; expected one of: ${ALL_SUITES[*]} e2e" >&2
            exit 2
            ;;
    esac
}

main() {
    local suites=("$@") failures passed failed
    ((${#suites[@]} == 0)) && suites=("${ALL_SUITES[@]}")
    echo "tests/run.sh: target broker $VIGIL_TEST_BROKER, logs in $LOG_DIR"
    for s in "${suites[@]}"; do
        run_suite "$s"
    done

    passed=$(count_lines pass)
    failed=$(count_lines fail)
    if ((failed > 0)); then
        echo
        echo "Failures:"
        awk -F'\t' '$1 == "fail" { printf "  %s\n      log: %s\n", $2, $3 }' "$RESULTS"
    fi
    skipped=$(count_lines skip)
    ((skipped > 0)) && echo "$skipped skipped (not applicable to $VIGIL_TEST_BROKER, or their data is absent)"
    echo "$passed passed, $failed failed"
    ((failed == 0))
}

main "$@"; exit $?
