#!/usr/bin/env bash
# Runs the side-by-side benchmark in one command: installs what it needs
# with apt-get (the build dependencies, mosquitto, gnuplot-nox), builds
# vigil with CMAKE_BUILD_TYPE=Release in build-bench/, runs `vigil bench
# --compare` against vigil, mosquitto and the raw relay, and writes the
# results and PNG plots to bench-results/<date>/ (bench-results/latest
# points there).
#
# Usage: scripts/bench.sh [--quick] [more `vigil bench --compare` options]
#   --quick   shorter windows, fewer steps and connections
# Environment: BENCH_OUT overrides the results directory.
set -euo pipefail
cd "$(dirname "$0")/.."

# What building vigil and running the benchmark need; the test suites'
# packages come from scripts/install-deps.sh instead.
PACKAGES=(build-essential cmake ninja-build pkg-config libuv1-dev libssl-dev libsqlite3-dev
          libjansson-dev libyaml-dev libpcap-dev mosquitto gnuplot-nox)

install_packages() {
    local missing=() pkg status
    for pkg in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
    done
    if ((${#missing[@]} > 0)); then
        echo "bench: installing ${missing[*]}"
        SUDO=""
        [[ $(id -u) -eq 0 ]] || SUDO="sudo"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

build() {
    cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIGIL_TESTS=OFF >/dev/null
    cmake --build build-bench -j "$(nproc)"
}

# Prints the steps of one scenario and broker, sorted by offered rate,
# without the first try of a retried step.
steps_of() {
    local csv=$1 scenario=$2 broker=$3
    awk -F, -v s="$scenario" -v b="$broker" 'NR > 1 && $1 == s && $2 == b && $17 != 1' "$csv" |
        sort -t, -k4 -g
}

# One PNG per sweep scenario: p99 latency and delivered rate against the
# offered rate, one line per broker.
plot_sweeps() {
    local dir=$1 csv=$1/steps.csv scenario broker data plots
    command -v gnuplot >/dev/null || { echo "bench: gnuplot not found; no plots"; return; }
    for scenario in $(awk -F, 'NR > 1 { print $1 }' "$csv" | sort -u); do
        plots=()
        for broker in vigil vigil-engine-off mosquitto relay; do
            data=$dir/plot-$scenario-$broker.dat
            steps_of "$csv" "$scenario" "$broker" | tr , ' ' >"$data"
            # A fixed-rate run (the hospital profile) has one point: no curve.
            (($(wc -l <"$data") >= 3)) &&
                plots+=("'$data' using 4:(\$7/1000) with linespoints title '$broker'")
        done
        if ((${#plots[@]} == 0)); then
            rm -f "$dir"/plot-"$scenario"-*.dat
            continue
        fi
        gnuplot <<EOF
set terminal pngcairo size 640,400 font ",10"
set output '$dir/$scenario.png'
set title "$scenario: p99 publish-to-delivery latency against offered load"
set xlabel "offered deliveries per second"
set ylabel "p99 latency (ms)"
set logscale xy
set format x "%.0s%c"
set grid
set key top left
plot $(IFS=,; echo "${plots[*]}")
EOF
        rm -f "$dir"/plot-"$scenario"-*.dat
    done
}

main() {
    local stamp out
    install_packages
    build
    stamp=$(date -u +%Y%m%d-%H%M%S)
    out=${BENCH_OUT:-bench-results/$stamp}
    mkdir -p "$out"
    {
        echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)"
        echo "uncommitted files $(git status --porcelain 2>/dev/null | wc -l)"
        uptime
    } >"$out/run-info.txt"
    build-bench/vigil bench --compare --out "$out" "$@" | tee "$out/summary.txt"
    plot_sweeps "$out"
    ln -sfn "$(basename "$out")" bench-results/latest 2>/dev/null || true
    echo "bench: results and plots in $out"
}

main "$@"
