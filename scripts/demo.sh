#!/usr/bin/env bash
# Runs the demo. The hub runs on its embedded default (data in
# ./vigil-data) with MQTT on 127.0.0.1:1883 and CoAP and MQTT-SN over DTLS
# on [::1]:5684 and [::1]:1885. A mixed fleet of 40 bedside monitors (MQTT),
# 6 wearables (CoAP) and 4 sensors (MQTT-SN) runs beside it, and the
# central-station view in the foreground. Ctrl-C stops everything this
# script started.
#
# Devices mon-0001..mon-00NN (role device), wear-0001.. and sens-0001..
# (role device, with a PSK) and "central" (role monitor) are created on the
# first run. Their passwords are kept in <data-dir>/demo-credentials and the
# PSKs in <data-dir>/demo-psk (both mode 0600) and reused on later runs.
# The hub reads <data-dir>/demo-vigil.yaml, which puts the wearables'
# measurements under north/ beside the monitors'.
#
# Environment: VIGIL_DEMO_DEVICES (monitors, default 40),
# VIGIL_DEMO_WEARABLES (default 6), VIGIL_DEMO_SENSORS (default 4),
# VIGIL_DEMO_DURATION (seconds, default 0 = until Ctrl-C), VIGIL_DEMO_SPEED
# (default 1), and for tests VIGIL_BIN (default ./build/vigil),
# VIGIL_DEMO_DATA_DIR (default ./vigil-data), VIGIL_DEMO_PORT (default 1883),
# VIGIL_DEMO_COAPS_PORT (default 5684) and VIGIL_DEMO_MQTTSN_PORT (default
# 1885).
set -euo pipefail
cd "$(dirname "$0")/.."

VIGIL=${VIGIL_BIN:-./build/vigil}
DATA_DIR=${VIGIL_DEMO_DATA_DIR:-./vigil-data}
CREDS="$DATA_DIR/demo-credentials"
PSKS="$DATA_DIR/demo-psk"
DEVICES=${VIGIL_DEMO_DEVICES:-40}
WEARABLES=${VIGIL_DEMO_WEARABLES:-6}
SENSORS=${VIGIL_DEMO_SENSORS:-4}
DURATION=${VIGIL_DEMO_DURATION:-0}
SPEED=${VIGIL_DEMO_SPEED:-1}
HOST=127.0.0.1
PORT=${VIGIL_DEMO_PORT:-1883}
UDP_HOST="::1"
COAPS_PORT=${VIGIL_DEMO_COAPS_PORT:-5684}
MQTTSN_PORT=${VIGIL_DEMO_MQTTSN_PORT:-1885}
# The hub's default gateway.topic_base; the simulator puts the wearables'
# status and alarms under the same prefix as the measurements they post.
TOPIC_BASE="hospital/%u/%t/%d/"

serve_pid=""
sim_pid=""

die() {
    echo "demo: $*" >&2
    exit 1
}

port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

stop_started() {
    trap - INT TERM EXIT
    if [[ -n "$sim_pid" ]] && kill -0 "$sim_pid" 2>/dev/null; then
        kill -TERM "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    if [[ -n "$serve_pid" ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    if [[ -f "$DATA_DIR/demo-sim.log" ]]; then
        echo
        echo "demo: simulator summary (full log in $DATA_DIR/demo-sim.log):"
        grep -q '^summary:' "$DATA_DIR/demo-sim.log" &&
            sed -n '/^summary:/,$p' "$DATA_DIR/demo-sim.log" || tail -n 5 "$DATA_DIR/demo-sim.log"
    fi
}

# Prints the ids already provisioned in the data directory, one per line.
existing_devices() {
    "$VIGIL" device list --data-dir "$DATA_DIR" 2>/dev/null | awk 'NR > 1 || $1 != "ID" {print $1}' || true
}

# Creates device $1 with role $2 unless its password is already in $CREDS.
# More arguments go to `vigil device add`; with --psk the key is kept in
# $PSKS, and a device whose key is missing there is created again.
provision() {
    local id=$1 role=$2 out password psk
    shift 2
    if grep -q "^$id " "$CREDS" 2>/dev/null &&
        { [[ " $* " != *" --psk "* ]] || grep -q "^$id " "$PSKS" 2>/dev/null; }; then
        return 0
    fi
    if grep -qx "$id" <<<"$known"; then
        # The device exists but its password or key was lost with the
        # credentials files: only hashes are stored, so it is created again.
        echo "demo: $id exists without a password or key in $DATA_DIR; creating it again"
        "$VIGIL" device remove "$id" --data-dir "$DATA_DIR" >/dev/null
    fi
    out=$("$VIGIL" device add "$id" --role "$role" --quiet --data-dir "$DATA_DIR" "$@") ||
        die "could not create device $id (see the message above)"
    password=$(sed -n 1p <<<"$out")
    psk=$(sed -n 2p <<<"$out")
    [[ -n "$password" ]] || die "vigil device add printed no password for $id"
    printf '%s %s\n' "$id" "$password" >>"$CREDS"
    if [[ " $* " == *" --psk "* ]]; then
        [[ -n "$psk" ]] || die "vigil device add printed no PSK for $id"
        printf '%s %s\n' "$id" "$psk" >>"$PSKS"
    fi
}

provision_all() {
    local i id
    mkdir -p "$DATA_DIR"
    chmod 700 "$DATA_DIR"
    (umask 077 && touch "$CREDS" "$PSKS")
    chmod 600 "$CREDS" "$PSKS"
    known=$(existing_devices)
    for ((i = 1; i <= DEVICES; i++)); do
        printf -v id 'mon-%04d' "$i"
        provision "$id" device
    done
    for ((i = 1; i <= WEARABLES; i++)); do
        printf -v id 'wear-%04d' "$i"
        provision "$id" device --psk --type wearable --unit icu3
    done
    for ((i = 1; i <= SENSORS; i++)); do
        printf -v id 'sens-%04d' "$i"
        provision "$id" device --psk --type sensor --unit icu3
    done
    provision central monitor
    echo "demo: $DEVICES monitors, $WEARABLES wearables, $SENSORS sensors and 'central'" \
        "provisioned; passwords in $CREDS, PSKs in $PSKS"
}

wait_for_broker() {
    local tries
    for ((tries = 0; tries < 100; tries++)); do
        kill -0 "$serve_pid" 2>/dev/null || {
            tail -n 20 "$DATA_DIR/demo-serve.log" >&2 || true
            die "vigil serve exited during startup (log above, in $DATA_DIR/demo-serve.log)"
        }
        port_in_use && return 0
        sleep 0.1
    done
    die "vigil serve did not listen on $HOST:$PORT within 10 s (see $DATA_DIR/demo-serve.log)"
}

[[ -x "$VIGIL" ]] || die "$VIGIL not found; run 'make build' first"
if port_in_use; then
    die "$HOST:$PORT is already in use by another program; stop it (for example a running 'vigil serve' or mosquitto) and run 'make demo' again"
fi

provision_all
trap stop_started INT TERM EXIT

# A UDP port already in use makes vigil serve exit, which wait_for_broker
# reports with the log.
"$VIGIL" serve --data-dir "$DATA_DIR" --mqtt "$HOST:$PORT" \
    --coaps "[$UDP_HOST]:$COAPS_PORT" --mqttsn-dtls "[$UDP_HOST]:$MQTTSN_PORT" --psk \
    >"$DATA_DIR/demo-serve.log" 2>&1 &
serve_pid=$!
wait_for_broker
echo "demo: vigil serve running (pid $serve_pid), log in $DATA_DIR/demo-serve.log"

"$VIGIL" sim --devices "$DEVICES" --credentials "$CREDS" --duration "$DURATION" \
    --speed "$SPEED" --host "$HOST" --port "$PORT" \
    --coap-devices "$WEARABLES" --mqttsn-devices "$SENSORS" --psk-file "$PSKS" \
    --coap "[$UDP_HOST]:$COAPS_PORT" --mqttsn "[$UDP_HOST]:$MQTTSN_PORT" \
    --coap-topic-base "$TOPIC_BASE" >"$DATA_DIR/demo-sim.log" 2>&1 &
sim_pid=$!
sleep 0.5
head -n 5 "$DATA_DIR/demo-sim.log" || true
echo "demo: vigil sim running (pid $sim_pid), log in $DATA_DIR/demo-sim.log; press Ctrl-C to stop"
sleep 1.5

station_status=0
# The monitors and sensors publish under north/, the wearables under the
# hub's gateway.topic_base (hospital/...), so the station watches every site.
"$VIGIL" station --credentials "$CREDS" --username central --host "$HOST" --port "$PORT" \
    --filter '+/+/+/+/#' \
    --duration "$DURATION" || station_status=$?
stop_started
exit "$station_status"
