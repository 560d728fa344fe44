#!/usr/bin/python3
"""Smoke test of `vigil bench`: every scenario runs briefly against a broker
this suite starts, and the result must have the fields a report needs,
with values that are consistent with each other. Nothing here checks a
rate or a latency against a target: benchmarks never assert time.

Usage: /usr/bin/python3 tests/e2e/bench/run.py [NAME-SUBSTRING...]
"""

import json
import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))

import harness  # noqa: E402
from broker import Broker, free_port, vigil_binary, wait_port  # noqa: E402
from harness import case, check, check_equal  # noqa: E402

BENCH_TIMEOUT = 120  # seconds for one `vigil bench` run under the sanitizers
LATENCY_KEYS = ("p50_us", "p99_us", "p999_us", "max_us")


class Fixture:
    """One broker per case, with a limit high enough for the idle case."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.current = None

    def before(self, c, ctx):
        yaml = "secmon:\n  enabled: false\n" if c.needs == "engine-off" else None
        self.current = Broker(self.log_dir, name=f"bench{c.number}",
                              limits={"max_connections": 5000}, extra_yaml=yaml)
        self.current.start()
        ctx.broker = self.current
        ctx.workdir = tempfile.mkdtemp(prefix=f"case{c.number}-", dir=self.log_dir)

    def after(self, c, ctx):
        b, self.current = self.current, None
        b.check_alive()
        b.stop()

    def on_failure(self, c, ctx, exc):
        b, self.current = self.current, None
        if b is None:
            return
        ctx.log("broker stderr tail:\n" + b.stderr_tail())
        if b.proc is not None:
            b.proc.kill()
            b.proc.wait()
            b.proc = None

    def close(self):
        pass


def run_bench(ctx, args, port=None, pid=None):
    """Run `vigil bench ARGS --json FILE` against the case's broker and
    return the parsed result."""
    out = os.path.join(ctx.workdir, "result.json")
    # --no-wait: the suite checks fields, so it need not wait for other
    # processes to go quiet, which could take minutes on a busy machine.
    cmd = [vigil_binary(), "bench", *args, "--json", out, "--no-wait"]
    if port is None and "--broker" not in args:
        cmd += ["--port", str(ctx.broker.port), "--pid", str(ctx.broker.proc.pid)]
    elif port is not None:
        cmd += ["--port", str(port)] + (["--pid", str(pid)] if pid else [])
    ctx.log("run:", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BENCH_TIMEOUT)
    ctx.log("exit status", proc.returncode, "\nstderr:\n" + proc.stderr)
    check_equal(proc.returncode, 0, "vigil bench exit status")
    with open(out, encoding="utf-8") as f:
        result = json.load(f)
    ctx.log("result:", json.dumps(result, indent=1))
    return result


def check_latencies(obj, label):
    values = [obj[k] for k in LATENCY_KEYS]
    check(all(v > 0 for v in values), f"{label}: latencies must be positive: {values}")
    check(values == sorted(values), f"{label}: p50 <= p99 <= p99.9 <= max expected: {values}")


def check_step(step, fanout=1):
    """A fixed-rate step of a healthy broker delivers everything."""
    check(step["sent"] > 0, f"nothing was sent: {step}")
    check_equal(step["expected"], step["sent"] * fanout, "expected deliveries")
    check_equal(step["received"], step["expected"], "deliveries received")
    check_equal(step["lost"], 0, "lost messages")
    check_equal(step["gen_dropped"], 0, "messages dropped by the generator")
    check_equal(step["conn_lost"], 0, "connections lost")
    check(step["delivered_per_s"] > 0, "delivered rate")
    # CPU time comes in clock ticks (10 ms), so a short, light step may show 0.
    check(step["broker_cpu_pct"] >= 0, f"broker CPU: {step['broker_cpu_pct']}")
    check(step["gen_cpu_pct"] >= 0, f"generator CPU: {step['gen_cpu_pct']}")
    check(0 <= step["broker_sys_cpu_pct"] <= step["broker_cpu_pct"],
          f"broker kernel CPU {step['broker_sys_cpu_pct']} within its CPU {step['broker_cpu_pct']}")
    check(isinstance(step["pass"], bool), "pass is a boolean")
    check_latencies(step, "step")


def check_memory(result):
    check(result.get("broker_rss_kb", 0) > 0, "broker RSS missing")
    check(result["broker_hwm_kb"] >= result["broker_rss_kb"], "VmHWM below VmRSS")


def fixed(ctx, scenario, *extra, fanout=1):
    res = run_bench(ctx, [scenario, "--rate", extra[0], "--duration", "500", "--warmup", "200",
                          *extra[1:]])
    check_equal(res["broker"], "external", "broker name")
    # A step that other processes disturbed is run again, three runs in all,
    # so a fixed-rate run on a busy machine may have up to three steps: the
    # same rate each time, every step but the last marked disturbed.
    steps = res["steps"]
    check(1 <= len(steps) <= 3, f"steps of a fixed-rate run: {len(steps)}")
    for step in steps[:-1]:
        check(step.get("disturbed") is True, "an earlier step was not marked disturbed")
    check_equal({s["offered_per_s"] for s in steps}, {steps[0]["offered_per_s"]},
                "offered rate of every step")
    check_step(steps[-1], fanout)
    check_memory(res)
    return res


@case("fan-in QoS 0 at a fixed rate")
def fanin_qos0(ctx):
    res = fixed(ctx, "fan-in", "300", "--publishers", "20")
    check_equal(res["params"]["publishers"], 20, "publishers")
    check_equal(res["params"]["fanout"], 1, "fan-in fanout")


@case("fan-in QoS 1 at a fixed rate")
def fanin_qos1(ctx):
    res = fixed(ctx, "fan-in", "200", "--publishers", "10", "--qos", "1")
    check_equal(res["params"]["qos"], 1, "QoS")


@case("fan-in QoS 2 at a fixed rate")
def fanin_qos2(ctx):
    res = fixed(ctx, "fan-in", "200", "--publishers", "10", "--qos", "2")
    check_equal(res["params"]["qos"], 2, "QoS")


@case("fan-in QoS 1 into a persistent subscriber session")
def fanin_durable(ctx):
    res = fixed(ctx, "fan-in", "200", "--publishers", "10", "--qos", "1", "--durable")
    check_equal(res["params"]["durable"], True, "durable flag in the parameters")
    check_equal(res["steps"][-1]["lost"], 0, "messages lost")


@case("--durable needs fan-in with QoS 1 or 2")
def durable_rejected(ctx):
    for args in (["fan-in", "--qos", "0", "--durable"], ["fan-out", "--qos", "1", "--durable"],
                 ["--compare", "--durable"]):
        cmd = [vigil_binary(), "bench", *args, "--port", str(ctx.broker.port), "--no-wait"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BENCH_TIMEOUT)
        ctx.log("run:", " ".join(cmd), "->", proc.returncode, proc.stderr)
        check_equal(proc.returncode, 2, f"exit status of {' '.join(args)}")
        check("--durable" in proc.stderr, f"error names the option: {proc.stderr!r}")


@case("fan-in 16 KiB payloads")
def fanin_payload(ctx):
    res = fixed(ctx, "fan-in", "100", "--publishers", "5", "--payload", "16384")
    check_equal(res["params"]["payload"], 16384, "payload size")


@case("fan-in with coalesced sends")
def fanin_coalesce(ctx):
    res = fixed(ctx, "fan-in", "400", "--publishers", "10", "--coalesce", "8000")
    check_equal(res["params"]["coalesce_us"], 8000, "coalescing period")
    check_equal(res["params"]["p99_limit_us"], 10000, "knee limit: 2 ms plus the period")
    # Each publish waits at the generator until the end of its 8 ms period,
    # 4 ms on average, so half of them cannot arrive sooner than 2 ms after
    # they were due. This is a floor the generator sets, not a speed.
    check(res["steps"][-1]["p50_us"] >= 2000,
          f"publishes were not held for their period: p50 {res['steps'][-1]['p50_us']} us")


@case("fan-out at a fixed rate")
def fanout(ctx):
    fixed(ctx, "fan-out", "20", "--subscribers", "10", fanout=10)


@case("fan-in sweep finds a knee")
def fanin_sweep(ctx):
    res = run_bench(ctx, ["fan-in", "--publishers", "5", "--start-rate", "100", "--max-rate",
                          "260", "--duration", "400", "--warmup", "100", "--p99-limit",
                          "1000000"])
    # Steps disturbed by other processes are repeated at the same rate.
    rates = sorted({s["offered_per_s"] for s in res["steps"]})
    check_equal(rates, [100, 150, 225], "offered rates of the sweep")
    check_equal(res["knee_offered_per_s"], 225, "knee with a limit nothing exceeds")
    check(res["knee_per_s"] == res["knee_offered_per_s"], "fan-in knee in deliveries")
    check(res["knee_p99_us"] > 0, "p99 at the knee")


@case("hospital profile")
def hospital(ctx):
    res = run_bench(ctx, ["hospital", "--publishers", "60", "--subscribers", "3",
                          "--duration", "2000", "--warmup", "1000"])
    step = res["steps"][-1]
    check_step(step)
    check_equal(res["params"]["rate"], 60, "one message per device and second")
    check(isinstance(res["pass"], bool), "pass is a boolean")


@case("connection storm")
def storm(ctx):
    res = run_bench(ctx, ["storm", "--connections", "200", "--concurrency", "8"])
    check_equal(res["completed"], 200, "completed connections")
    check_equal(res["failed"], 0, f"failed connections ({res['first_error']})")
    check(res["connects_per_s"] > 0, "connections per second")
    check(res["broker_cpu_us_per_conn"] >= 0, "broker CPU per connection")
    check_latencies(res, "storm")


@case("idle connections")
def idle(ctx):
    res = run_bench(ctx, ["idle", "--connections", "300"])
    check_equal(res["connections"], 300, "connections held")
    check(res["rss_after_kb"] > 0 and res["rss_before_kb"] > 0, "broker RSS sampled")
    expected = (res["rss_after_kb"] - res["rss_before_kb"]) * 1024 / 300
    check(abs(res["bytes_per_connection"] - expected) < 1, "bytes per connection from RSS")


@case("TLS handshakes against vigil it starts", only="vigil")
def tls(ctx):
    res = run_bench(ctx, ["tls", "--broker", "vigil", "--vigil", vigil_binary(),
                          "--connections", "20", "--concurrency", "4"])
    check_equal(res["broker"], "vigil", "broker name")
    check_equal(res["completed"], 20, "completed handshakes")
    check_equal(res["failed"], 0, f"failed handshakes ({res['first_error']})")
    check(res["handshakes_per_s"] > 0, "handshakes per second")
    check_latencies(res, "tls")


@case("engine off publishes without events", only="vigil", needs="engine-off")
def engine_off(ctx):
    fixed(ctx, "fan-in", "200", "--publishers", "5")
    kinds = {e.get("type") for e in ctx.broker.events()}
    check("publish" not in kinds and "connect_attempt" not in kinds,
          f"events recorded with secmon.enabled: false: {sorted(kinds)}")


@case("raw relay forwards and stops on SIGTERM")
def relay(ctx):
    port = free_port()
    log = open(os.path.join(ctx.workdir, "relay.log"), "wb")
    proc = subprocess.Popen([vigil_binary(), "bench", "--relay", f"127.0.0.1:{port}"],
                            stdout=log, stderr=log)
    log.close()
    ctx.defer(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
    wait_port(port, proc=proc)
    for qos in ("0", "1", "2"):
        res = run_bench(ctx, ["fan-in", "--rate", "200", "--publishers", "5", "--qos", qos,
                              "--duration", "400", "--warmup", "100"], port=port, pid=proc.pid)
        check_step(res["steps"][-1])
    res = run_bench(ctx, ["fan-out", "--rate", "20", "--subscribers", "5", "--duration", "400",
                          "--warmup", "100"], port=port, pid=proc.pid)
    check_step(res["steps"][-1], fanout=5)
    proc.send_signal(signal.SIGTERM)
    check_equal(proc.wait(timeout=10), 0, "relay exit status after SIGTERM")


@case("--report rebuilds the files of an older results.json")
def report_older(ctx):
    res = fixed(ctx, "fan-in", "300", "--publishers", "5")
    # A run from before broker_sys_cpu_pct existed, beside a current one.
    older = json.loads(json.dumps(res))
    older["broker"] = "mosquitto"
    older.pop("knee_broker_sys_cpu_pct", None)
    for step in older["steps"]:
        del step["broker_sys_cpu_pct"]
    src = os.path.join(ctx.workdir, "older.json")
    with open(src, "w", encoding="utf-8") as f:
        json.dump({"results": [older, res]}, f)

    out = os.path.join(ctx.workdir, "rebuilt")  # --report creates it
    cmd = [vigil_binary(), "bench", "--report", src, "--out", out]
    ctx.log("run:", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BENCH_TIMEOUT)
    ctx.log("exit status", proc.returncode, "\nstdout:\n" + proc.stdout, "\nstderr:\n" + proc.stderr)
    check_equal(proc.returncode, 0, "vigil bench --report exit status")

    with open(os.path.join(out, "steps.csv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split(",") for line in f]
    header, rows = rows[0], rows[1:]
    # scripts/bench.sh plots columns 4 and 7 and skips rows by column 17
    # (awk numbers them from 1).
    check_equal([header[3], header[6], header[16]],
                ["offered_deliveries_per_s", "p99_us", "retried"], "columns bench.sh reads")
    check(all(len(r) == len(header) for r in rows), f"cells per row: {rows}")

    sys_col = header.index("broker_sys_cpu_pct")
    for row in rows:
        if row[1] == "mosquitto":
            check_equal(row[sys_col], "", "kernel CPU of a step that did not measure it")
        else:
            check(0 <= float(row[sys_col]) <= float(row[header.index("broker_cpu_pct")]),
                  f"kernel CPU within the broker's CPU: {row}")


@case("compare writes every output file", only="vigil")
def compare(ctx):
    out = os.path.join(ctx.workdir, "results")
    cmd = [vigil_binary(), "bench", "--compare", "--quick", "--only", "storm", "--brokers",
           "vigil,relay", "--vigil", vigil_binary(), "--out", out, "--no-wait"]
    ctx.log("run:", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BENCH_TIMEOUT)
    ctx.log("exit status", proc.returncode, "\nstdout:\n" + proc.stdout, "\nstderr:\n" + proc.stderr)
    check_equal(proc.returncode, 0, "vigil bench --compare exit status")
    for name in ("results.json", "steps.csv", "summary.csv", "summary.md"):
        check(os.path.getsize(os.path.join(out, name)) > 0, f"{name} is empty")
    with open(os.path.join(out, "steps.csv"), encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    check_equal(header[-3:], ["pass", "retried", "broker_sys_cpu_pct"], "last columns of steps.csv")
    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
        doc = json.load(f)
    check_equal(sorted(r["broker"] for r in doc["results"]), ["relay", "vigil"], "brokers run")
    check(doc["machine"]["cores"] > 0 and doc["machine"]["cpu"], "machine description")
    rows = [r for r in doc["summary"] if r["metric"].startswith("connections/s")]
    check_equal(len(rows), 1, "summary row of the storm")
    check(rows[0]["values"]["vigil"] > 0 and rows[0]["values"]["relay"] > 0, "storm values")
    check("| storm |" in proc.stdout, "summary table printed")


if __name__ == "__main__":
    sys.exit(harness.run("e2e/bench", Fixture))
