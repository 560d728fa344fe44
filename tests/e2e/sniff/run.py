#!/usr/bin/python3
"""`vigil serve --sniff` watching MQTT traffic to another broker.

Each case makes its own network namespace (`ip netns add`, so it needs
root), runs Debian's mosquitto on the namespace's loopback with a password
file, and runs vigil in the same namespace with --sniff lo. Clients attack
mosquitto, never vigil, and the case checks that vigil's events.jsonl has
the observed events and that `vigil alerts list` has the alerts. All
traffic stays inside the namespace, which is deleted afterwards.

Usage: /usr/bin/python3 tests/e2e/sniff/run.py [NAME-SUBSTRING...]
Every case is vigil-only and skipped against mosquitto.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))

import harness  # noqa: E402
from broker import SANITIZER_PATTERNS, vigil_binary  # noqa: E402
from harness import case, check, check_equal  # noqa: E402

MOSQUITTO = "/usr/sbin/mosquitto"
VIGIL_PORT = 18830          # vigil's own listener inside the namespace
WRONG_LOGINS = 12           # brute_force needs 5 failures per source within 60 s
FLOOD_MESSAGES = 3000       # message_flood needs more than 100 publishes a second
# Observed events carry conn ids from 1 << 40 up (LIVE_CONN_ID_SHIFT in src/passive/live.h).
OBSERVED_CONN_MIN = 1 << 40


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir

    def before(self, c, ctx):
        ctx.work = os.path.join(self.log_dir, f"{c.number:03d}")
        shutil.rmtree(ctx.work, ignore_errors=True)
        os.makedirs(ctx.work)
        ctx.data = os.path.join(ctx.work, "data")
        ctx.ns = None

    def after(self, c, ctx):
        pass

    def on_failure(self, c, ctx, exc):
        pass

    def close(self):
        pass


def run(ctx, cmd, timeout=60, check_status=True, input_text=None):
    """Run cmd, log it, and return the CompletedProcess."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input_text)
    ctx.log("$", " ".join(cmd), "->", proc.returncode)
    if proc.stdout.strip() and len(proc.stdout) < 4000:
        ctx.log("stdout:", proc.stdout.strip())
    if proc.stderr.strip():
        ctx.log("stderr:", proc.stderr.strip()[-4000:])
    if check_status:
        check_equal(proc.returncode, 0, f"status of {' '.join(cmd[:4])}")
    return proc


def make_namespace(ctx):
    """Create a network namespace with its loopback up; deleted after the case."""
    name = f"vigil-sniff-{os.getpid()}-{os.path.basename(ctx.work)}"
    proc = run(ctx, ["ip", "netns", "add", name], check_status=False)
    check(proc.returncode == 0,
          f"cannot create network namespace {name} (needs root): {proc.stderr.strip()}")
    ctx.ns = name
    ctx.defer(run, ctx, ["ip", "netns", "del", name], 30, False)
    run(ctx, ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
    return name


def in_ns(ctx, *cmd):
    return ["ip", "netns", "exec", ctx.ns, *cmd]


def stop_process(ctx, proc, what, timeout=20):
    """SIGTERM by PID, then wait; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(f"{what} did not exit within {timeout} s of SIGTERM")
    ctx.log(what, "exited with", proc.returncode)
    return proc.returncode


def start_mosquitto(ctx, port):
    """Run mosquitto in the namespace with a password file: user dev1, password goodpass."""
    passwd = os.path.join(ctx.work, "passwd")
    conf = os.path.join(ctx.work, "mosquitto.conf")
    run(ctx, ["mosquitto_passwd", "-b", "-c", passwd, "dev1", "goodpass"])
    os.chmod(passwd, 0o600)
    with open(conf, "w", encoding="utf-8") as f:
        # The namespace is private to this case, so mosquitto keeps root and
        # can read the root-owned password file.
        f.write(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous false\n"
                f"password_file {passwd}\n")
    log = open(os.path.join(ctx.work, "mosquitto.log"), "w", encoding="utf-8")
    proc = subprocess.Popen(in_ns(ctx, MOSQUITTO, "-c", conf), stdout=log, stderr=log)
    ctx.defer(stop_process, ctx, proc, "mosquitto")
    ctx.defer(log.close)
    wait_listening(ctx, port, proc, "mosquitto")
    return proc


def wait_listening(ctx, port, proc, what, timeout=20.0):
    """Poll `ss` in the namespace until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with status {proc.returncode} before listening")
        out = subprocess.run(in_ns(ctx, "ss", "-Htln", f"sport = :{port}"), capture_output=True,
                             text=True, timeout=10).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on port {port} within {timeout} s")


def start_vigil(ctx, *extra):
    """Run vigil serve in the namespace; its stderr goes to vigil.log."""
    log_path = os.path.join(ctx.work, "vigil.log")
    log = open(log_path, "w", encoding="utf-8")
    cmd = in_ns(ctx, vigil_binary(), "serve", "--data-dir", ctx.data, "--mqtt",
                f"127.0.0.1:{VIGIL_PORT}", "--anonymous", *extra)
    ctx.log("$", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    ctx.vigil_log = log_path
    ctx.defer(log.close)
    ctx.defer(stop_process, ctx, proc, "vigil")
    wait_listening(ctx, VIGIL_PORT, proc, "vigil")
    return proc


def stop_vigil(ctx, proc):
    status = stop_process(ctx, proc, "vigil")
    with open(ctx.vigil_log, encoding="utf-8") as f:
        text = f.read()
    ctx.log("vigil log tail:\n" + text[-3000:])
    check(not SANITIZER_PATTERNS.search(text), "sanitizer report in vigil's stderr")
    check_equal(status, 0, "vigil exit status")
    return text


def read_events(ctx):
    path = os.path.join(ctx.data, "events.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        # A last line without its newline is still being written.
        return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]


def observed(events, etype):
    return [e for e in events if e.get("observed") is True and e["type"] == etype]


def wait_events(ctx, etype, count, timeout=30.0):
    """Poll events.jsonl until it has count observed events of etype."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(observed(read_events(ctx), etype)) >= count:
            return
        time.sleep(0.2)
    got = len(observed(read_events(ctx), etype))
    raise AssertionError(f"expected {count} observed {etype} events within {timeout} s, got {got}")


def pub(ctx, port, *args, input_text=None, check_status=True):
    cmd = in_ns(ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), *args)
    return run(ctx, cmd, check_status=check_status, input_text=input_text)


def alert_rules(ctx):
    proc = run(ctx, [vigil_binary(), "alerts", "list", "--json", "--data-dir", ctx.data])
    check(not SANITIZER_PATTERNS.search(proc.stderr), "sanitizer report in vigil alerts")
    return {a["rule"] for a in json.loads(proc.stdout)}


@case("missing interface stops the start", only="vigil")
def missing_interface(ctx):
    make_namespace(ctx)
    cmd = in_ns(ctx, vigil_binary(), "serve", "--data-dir", ctx.data, "--mqtt",
                f"127.0.0.1:{VIGIL_PORT}", "--anonymous", "--sniff", "does-not-exist0")
    proc = run(ctx, cmd, timeout=60, check_status=False)
    check(not SANITIZER_PATTERNS.search(proc.stderr), "sanitizer report in vigil's stderr")
    check_equal(proc.returncode, 1, "vigil serve exit status")
    check("sniff interface 'does-not-exist0': no such interface" in proc.stderr,
          "no message naming the interface in vigil's stderr")
    check("ip link show" in proc.stderr, "no fix (ip link show) in vigil's stderr")


@case("capture without CAP_NET_RAW fails", only="vigil")
def permission_denied(ctx):
    make_namespace(ctx)
    # The log directory may be private to root, so nobody's data goes elsewhere.
    home = tempfile.mkdtemp(prefix="vigil-sniff-nobody-")
    ctx.defer(shutil.rmtree, home, True)
    os.chmod(home, 0o755)
    os.chown(home, 65534, 65534)
    cmd = in_ns(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "--inh-caps=-all", vigil_binary(), "serve", "--data-dir",
                os.path.join(home, "data"), "--mqtt",
                f"127.0.0.1:{VIGIL_PORT}", "--anonymous", "--sniff", "lo")
    proc = run(ctx, cmd, timeout=60, check_status=False)
    check(not SANITIZER_PATTERNS.search(proc.stderr), "sanitizer report in vigil's stderr")
    check_equal(proc.returncode, 1, "vigil serve exit status")
    check("sniff interface 'lo': permission denied" in proc.stderr,
          "no permission message naming the interface in vigil's stderr")
    check("CAP_NET_RAW" in proc.stderr, "no fix (CAP_NET_RAW) in vigil's stderr")


@case("vanished interface stops its capture", only="vigil")
def interface_vanishes(ctx):
    make_namespace(ctx)
    run(ctx, in_ns(ctx, "ip", "link", "add", "sniff0", "type", "veth", "peer", "name", "sniff1"))
    run(ctx, in_ns(ctx, "ip", "link", "set", "sniff0", "up"))
    vigil = start_vigil(ctx, "--sniff", "sniff0", "--sniff", "lo")
    wait_events(ctx, "admin", 2)
    run(ctx, in_ns(ctx, "ip", "link", "del", "sniff0"))
    deadline = time.monotonic() + 10
    stopped = []
    while time.monotonic() < deadline and not stopped:
        stopped = [e for e in observed(read_events(ctx), "admin")
                   if e["detail"].startswith("sniffing on sniff0 stopped: ")]
        time.sleep(0.2)
    check(stopped, "no 'sniffing on sniff0 stopped: REASON' event after the link was deleted")
    check(vigil.poll() is None, "vigil exited when a sniffed interface vanished")
    stop_vigil(ctx, vigil)
    details = [e["detail"] for e in observed(read_events(ctx), "admin")]
    check_equal(sum(d.startswith("sniffing on sniff0 stopped") for d in details), 1,
                "stop events of sniff0")
    check("sniffing on lo stopped" in details, "no stop event of lo")


@case("observed brute force and flood", only="vigil")
def brute_force_and_flood(ctx):
    make_namespace(ctx)
    start_mosquitto(ctx, 1883)
    vigil = start_vigil(ctx, "--sniff", "lo")
    wait_events(ctx, "admin", 1)  # "sniffing on lo started"

    for i in range(WRONG_LOGINS):
        proc = pub(ctx, 1883, "-u", "dev1", "-P", f"wrong-{i}", "-i", f"guess-{i}", "-t", "a/b",
                   "-m", "x", check_status=False)
        check(proc.returncode != 0, "mosquitto accepted a wrong password")
    lines = "".join(f"{i}\n" for i in range(FLOOD_MESSAGES))
    pub(ctx, 1883, "-u", "dev1", "-P", "goodpass", "-i", "flooder", "-t",
        "north/icu3/room305/flooder/heart_rate", "-l", input_text=lines)
    # One publish to vigil itself: the hub's own event, not an observed one.
    pub(ctx, VIGIL_PORT, "-i", "own-client", "-t", "north/icu3/room305/own-client/spo2",
        "-m", "97")

    wait_events(ctx, "auth_failure", WRONG_LOGINS)
    wait_events(ctx, "publish", FLOOD_MESSAGES)
    deadline = time.monotonic() + 20
    rules = set()
    while time.monotonic() < deadline and not {"brute_force", "message_flood"} <= rules:
        rules = alert_rules(ctx)
        time.sleep(0.5)
    stop_vigil(ctx, vigil)

    events = read_events(ctx)
    failures = observed(events, "auth_failure")
    publishes = observed(events, "publish")
    check_equal(len(failures), WRONG_LOGINS, "observed auth_failure events")
    check_equal({e["client_id"] for e in failures},
                {f"guess-{i}" for i in range(WRONG_LOGINS)}, "client ids of the failures")
    check_equal(len(publishes), FLOOD_MESSAGES, "observed publish events")
    check(all(e["topic"] == "north/icu3/room305/flooder/heart_rate" for e in publishes),
          "an observed publish has another topic")
    check(all(e["conn"] >= OBSERVED_CONN_MIN for e in failures + publishes),
          "an observed event has a conn id in the hub's range")
    own = [e for e in events if e["type"] == "publish" and e.get("client_id") == "own-client"]
    check_equal(len(own), 1, "publish events of the hub's own client")
    check("observed" not in own[0], "the hub's own publish is marked observed")
    check(any(e["type"] == "admin" and e.get("detail") == "sniffing on lo stopped"
              for e in events), "no 'sniffing on lo stopped' event")
    rules = alert_rules(ctx)
    check("brute_force" in rules, f"no brute_force alert; alerts: {sorted(rules)}")
    check("message_flood" in rules, f"no message_flood alert; alerts: {sorted(rules)}")


@case("sniff settings from the config file", only="vigil")
def config_file(ctx):
    make_namespace(ctx)
    start_mosquitto(ctx, 1884)
    conf = os.path.join(ctx.work, "vigil.yaml")
    with open(conf, "w", encoding="utf-8") as f:
        f.write("sniff: [lo]\nsniff_ports: [1884]\nsniff_buffer_size: 1048576\n")
    vigil = start_vigil(ctx, "-c", conf)
    wait_events(ctx, "admin", 1)
    pub(ctx, 1884, "-u", "dev1", "-P", "goodpass", "-i", "mon-0042", "-t",
        "north/icu3/room305/mon-0042/heart_rate", "-m", "72")
    wait_events(ctx, "auth_success", 1)
    wait_events(ctx, "publish", 1)
    stop_vigil(ctx, vigil)
    success = observed(read_events(ctx), "auth_success")
    check_equal(success[0]["client_id"], "mon-0042", "client id of the observed login")


if __name__ == "__main__":
    sys.exit(harness.run("e2e/sniff", Fixture))
