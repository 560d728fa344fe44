#!/usr/bin/env bash
# Runs the demo: the hub on its embedded default (data in ./vigil-data, MQTT
# on 127.0.0.1:1883), 50 simulated bedside monitors and the central-station
# view in the foreground. Ctrl-C stops everything this script started.
#
# Devices mon-0001..mon-00NN (role device) and "central" (role monitor) are
# created on the first run; their passwords are kept in
# <data-dir>/demo-credentials (mode 0600) and reused on later runs.
#
# Environment: VIGIL_DEMO_DEVICES (default 50), VIGIL_DEMO_DURATION (seconds,
# default 0 = until Ctrl-C), VIGIL_DEMO_SPEED (default 1), and for tests
# VIGIL_BIN (default ./build/vigil), VIGIL_DEMO_DATA_DIR (default ./vigil-data)
# and VIGIL_DEMO_PORT (default 1883).
set -euo pipefail
cd "$(dirname "$0")/.."

VIGIL=${VIGIL_BIN:-./build/vigil}
DATA_DIR=${VIGIL_DEMO_DATA_DIR:-./vigil-data}
CREDS="$DATA_DIR/demo-credentials"
DEVICES=${VIGIL_DEMO_DEVICES:-50}
DURATION=${VIGIL_DEMO_DURATION:-0}
SPEED=${VIGIL_DEMO_SPEED:-1}
HOST=127.0.0.1
PORT=${VIGIL_DEMO_PORT:-1883}

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
        grep -A4 '^summary:' "$DATA_DIR/demo-sim.log" || tail -n 5 "$DATA_DIR/demo-sim.log"
    fi
}

# Prints the ids already provisioned in the data directory, one per line.
existing_devices() {
    "$VIGIL" device list --data-dir "$DATA_DIR" 2>/dev/null | awk 'NR > 1 || $1 != "ID" {print $1}' || true
}

# Creates device $1 with role $2 unless its password is already in $CREDS.
provision() {
    local id=$1 role=$2 password
    if grep -q "^$id " "$CREDS" 2>/dev/null; then
        return 0
    fi
    if grep -qx "$id" <<<"$known"; then
        # The device exists but its password was lost with the credentials
        # file: only its hash is stored, so it is created again.
        echo "demo: $id exists without a password in $CREDS; creating it again"
        "$VIGIL" device remove "$id" --data-dir "$DATA_DIR" >/dev/null
    fi
    password=$("$VIGIL" device add "$id" --role "$role" --quiet --data-dir "$DATA_DIR") ||
        die "could not create device $id (see the message above)"
    [[ -n "$password" ]] || die "vigil device add printed no password for $id"
    printf '%s %s\n' "$id" "$password" >>"$CREDS"
}

provision_all() {
    local i id
    mkdir -p "$DATA_DIR"
    chmod 700 "$DATA_DIR"
    (umask 077 && touch "$CREDS")
    chmod 600 "$CREDS"
    known=$(existing_devices)
    for ((i = 1; i <= DEVICES; i++)); do
        printf -v id 'mon-%04d' "$i"
        provision "$id" device
    done
    provision central monitor
    echo "demo: $DEVICES monitors and 'central' provisioned; passwords in $CREDS"
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

"$VIGIL" serve --data-dir "$DATA_DIR" --mqtt "$HOST:$PORT" >"$DATA_DIR/demo-serve.log" 2>&1 &
serve_pid=$!
wait_for_broker
echo "demo: vigil serve running (pid $serve_pid), log in $DATA_DIR/demo-serve.log"

"$VIGIL" sim --devices "$DEVICES" --credentials "$CREDS" --duration "$DURATION" \
    --speed "$SPEED" --host "$HOST" --port "$PORT" >"$DATA_DIR/demo-sim.log" 2>&1 &
sim_pid=$!
sleep 0.5
head -n 3 "$DATA_DIR/demo-sim.log" || true
echo "demo: vigil sim running (pid $sim_pid), log in $DATA_DIR/demo-sim.log; press Ctrl-C to stop"
sleep 1.5

station_status=0
"$VIGIL" station --credentials "$CREDS" --username central --host "$HOST" --port "$PORT" \
    --duration "$DURATION" || station_status=$?
stop_started
exit "$station_status"
