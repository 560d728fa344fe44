#!/usr/bin/env bash
# Installs the Debian and npm packages vigil needs to build, test and run the
# demo. Idempotent: packages already present are not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
    build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
    libuv1-dev libssl-dev libsqlite3-dev libjansson-dev libyaml-dev libcmocka-dev libpcap-dev
    mosquitto mosquitto-clients python3 python3-paho-mqtt nodejs npm sqlite3 openssl
    rsyslog rsyslog-openssl iproute2 libcoap3-bin
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

# nodejs and npm may come from outside Debian on some machines; a working
# node and npm on PATH is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
    filtered=()
    for pkg in "${missing[@]}"; do
        [[ "$pkg" == nodejs || "$pkg" == npm ]] || filtered+=("$pkg")
    done
    missing=("${filtered[@]+"${filtered[@]}"}")
fi

if ((${#missing[@]} > 0)); then
    echo "install-deps: installing ${missing[*]}"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ -f tests/e2e/package.json ]]; then
    if [[ ! -d tests/e2e/node_modules ]] || [[ tests/e2e/package.json -nt tests/e2e/node_modules ]]; then
        echo "install-deps: installing npm packages for the end-to-end tests"
        (cd tests/e2e && npm install --no-audit --no-fund --silent)
        touch tests/e2e/node_modules
    fi
fi
