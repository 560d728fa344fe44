#!/usr/bin/python3
"""The security engine inside `vigil serve`, end to end.

Usage: /usr/bin/python3 tests/e2e/engine/run.py [NAME-SUBSTRING...]

A hub with a password listener and an anonymous loopback listener runs
`vigil sim --devices 20 --speed 10` as the benign fleet. Real clients then
perform one attack per case, each from its own loopback address
(127.0.0.2 and up) so that per-source windows of one case do not add up
with another's. Each case reads `vigil alerts list --json` and expects
exactly its rules among the alerts opened during the case, with an
explanation that names the device or source. A separate hub runs only the
fleet for 60 s at --speed 20 and must raise no alert. Every case is
vigil-only.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))

import harness  # noqa: E402
import mqttraw as m  # noqa: E402
from broker import Broker, vigil_binary  # noqa: E402
from harness import case, check  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

FLEET = 20
# Devices of the attack cases. Their id prefixes differ from the fleet's
# "mon-", so the fleet's type baselines do not score them.
ATTACKERS = ["x1-probe", "x2-flood", "x3-qos", "x4-range", "mon-0021", "x5-pump"]
# Inventory types of attack devices; the fleet has none.
DEVICE_TYPES = {"x5-pump": "infusion-pump"}
SECMON_YAML = ("secmon:\n"
               "  learning_s: 10\n"
               "  profiles:\n"
               "    infusion-pump:\n"
               "      flood_msgs_per_s: 10\n"
               "limits:\n"
               "  connect_timeout_ms: 1000\n")
ALERT_WAIT_S = 20.0
SETTLE_S = 1.5


def run_vigil(args, timeout=60):
    out = subprocess.run([vigil_binary()] + args, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"vigil {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout


class Hub:
    """A broker on a copy of the provisioned data directory, with a fleet."""

    def __init__(self, log_dir, template, name):
        self.broker = Broker(log_dir, name=name, anonymous=False, anonymous_listener=True,
                             extra_yaml=SECMON_YAML)
        shutil.rmtree(self.broker.data_dir)
        shutil.copytree(template, self.broker.data_dir)
        self.broker.start()
        self.sim = None
        self.sim_log = os.path.join(self.broker.workdir, "sim.log")

    def start_fleet(self, creds, speed, duration=0):
        cmd = [vigil_binary(), "sim", "--port", str(self.broker.port), "--credentials", creds,
               "--devices", str(FLEET), "--speed", str(speed), "--duration", str(duration),
               "--progress", "0"]
        log = open(self.sim_log, "ab")
        # The simulator finds ../shared/data/vitals from the repository root.
        self.sim = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log)
        log.close()

    def stop_fleet(self):
        if self.sim is None:
            return
        sim, self.sim = self.sim, None
        if sim.poll() is None:
            sim.terminate()
            try:
                sim.wait(15)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()

    def alerts(self):
        return json.loads(run_vigil(["alerts", "list", "--json", "--data-dir",
                                     self.broker.data_dir]))

    def close(self):
        self.stop_fleet()
        self.broker.stop()


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.template = os.path.join(log_dir, "template")
        self.passwords = {}
        self.creds = os.path.join(log_dir, "fleet-credentials")
        self.attack_hub = None
        self.hubs = []
        self._provision()

    def _provision(self):
        shutil.rmtree(self.template, ignore_errors=True)
        os.makedirs(self.template, mode=0o700)
        ids = [f"mon-{i:04d}" for i in range(1, FLEET + 1)] + ATTACKERS
        for device in ids:
            args = ["device", "add", device, "--data-dir", self.template, "--quiet"]
            if device in DEVICE_TYPES:
                args += ["--type", DEVICE_TYPES[device]]
            out = run_vigil(args)
            self.passwords[device] = out.strip().splitlines()[-1].strip()
        fd = os.open(self.creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            for i in range(1, FLEET + 1):
                f.write(f"mon-{i:04d} {self.passwords[f'mon-{i:04d}']}\n")

    def new_hub(self, name, speed):
        hub = Hub(self.log_dir, self.template, name)
        self.hubs.append(hub)
        hub.start_fleet(self.creds, speed)
        return hub

    def before(self, c, ctx):
        if c.needs == "benign":
            ctx.hub = None
            return
        if self.attack_hub is None:
            self.attack_hub = self.new_hub("engine", 10)
            # Let every monitor connect and the fleet learn before attacks.
            time.sleep(12)
        ctx.hub = self.attack_hub
        ctx.before_ids = {a["alert_id"] for a in ctx.hub.alerts()}

    def after(self, c, ctx):
        for hub in self.hubs:
            hub.broker.check_alive()

    def on_failure(self, c, ctx, exc):
        hub = getattr(ctx, "hub", None)
        if hub is not None:
            ctx.log("broker stderr tail:\n" + hub.broker.stderr_tail())

    def close(self):
        for hub in self.hubs:
            hub.close()


# -- helpers ---------------------------------------------------------------

def new_alerts(ctx):
    return [a for a in ctx.hub.alerts() if a["alert_id"] not in ctx.before_ids]


def expect_alerts(ctx, expected, subject):
    """Wait for every rule in expected among the new alerts, then check that
    each names subject (a device id or source address) and that no other
    rule was raised."""
    deadline = time.monotonic() + ALERT_WAIT_S
    while True:
        got = new_alerts(ctx)
        if set(expected) <= {a["rule"] for a in got} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(SETTLE_S)

    got = new_alerts(ctx)
    for a in got:
        ctx.log("alert", a["rule"], a["device"], a["source"], a["explanation"])
    rules = {a["rule"] for a in got}
    for rule in expected:
        check(rule in rules, f"expected a {rule} alert; got {sorted(rules)}")
    unexpected = rules - set(expected)
    check(not unexpected, f"unexpected alerts {sorted(unexpected)}: "
          + "; ".join(a["explanation"] for a in got if a["rule"] in unexpected))

    for a in got:
        if a["rule"] not in expected:
            continue
        text = a["explanation"]
        check(text, f"{a['rule']}: empty explanation")
        check(subject in text, f"{a['rule']}: explanation does not name {subject}: {text}")
        check(a["observation"] and f"Observed: {a['observation']}" in text,
              f"{a['rule']}: explanation lacks the observation: {text}")
        expectation = text.split("Expected: ", 1)[1].split(".", 1)[0] if "Expected: " in text else ""
        check(expectation.strip(), f"{a['rule']}: explanation lacks the expectation: {text}")
    return got


def raw_socket(port, source):
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def paho_client(ctx, client_id, source, password=None, port=None):
    client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
    if password is not None:
        client.username_pw_set(client_id, password)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p=None: connected.set()
    client.connect("127.0.0.1", port or ctx.hub.broker.port, 30, bind_address=source)
    client.loop_start()
    ctx.defer(client.loop_stop)
    ctx.defer(client.disconnect)
    check(connected.wait(10), f"{client_id} did not connect")
    return client


def fixture_of(ctx):
    return ctx.fixture


# -- cases -----------------------------------------------------------------

@case("brute force with wrong passwords", only="vigil")
def _(ctx):
    port = ctx.hub.broker.port
    for i in range(8):
        out = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-A",
                              "127.0.0.2", "-i", f"guess-{i}", "-u", "mon-0005", "-P",
                              f"wrong-{i}", "-t", "north/icu3/room305/mon-0005/x", "-m", "1"],
                             capture_output=True, text=True, timeout=30)
        ctx.log("mosquitto_pub", i, out.returncode, out.stderr.strip())
        check(out.returncode != 0, "a wrong password was accepted")
    expect_alerts(ctx, ["brute_force"], "127.0.0.2")


@case("message flood at QoS 0", only="vigil")
def _(ctx):
    password = fixture_of(ctx).passwords["x2-flood"]
    client = paho_client(ctx, "x2-flood", "127.0.0.3", password)
    for i in range(3000):
        client.publish("north/icu3/room902/x2-flood/log", b"x" * 20, qos=0)
    expect_alerts(ctx, ["message_flood"], "x2-flood")


@case("QoS 1 and 2 flood", only="vigil")
def _(ctx):
    password = fixture_of(ctx).passwords["x3-qos"]
    client = paho_client(ctx, "x3-qos", "127.0.0.4", password)
    # About 80 per second: above qos_flood_msgs_per_s (50), below
    # flood_msgs_per_s (100).
    for i in range(200):
        client.publish("north/icu3/room903/x3-qos/log", b"y" * 20, qos=1 + i % 2)
        time.sleep(1 / 80)
    expect_alerts(ctx, ["qos_flood"], "x3-qos")


@case("flood by the infusion-pump profile", only="vigil")
def _(ctx):
    # About 30 per second: above the infusion-pump profile's
    # flood_msgs_per_s (10), below the global 100.
    password = fixture_of(ctx).passwords["x5-pump"]
    client = paho_client(ctx, "x5-pump", "127.0.0.11", password)
    for i in range(90):
        client.publish("north/icu3/room905/x5-pump/log", b"z" * 20, qos=0)
        time.sleep(1 / 30)
    got = expect_alerts(ctx, ["message_flood"], "x5-pump")
    flood = [a for a in got if a["rule"] == "message_flood"]
    check(all("at most 10 " in a["explanation"] for a in flood),
          f"flood not judged by the profile: {[a['explanation'] for a in flood]}")
    events = [e for e in ctx.hub.broker.events() if e.get("device") == "x5-pump"]
    check(events, "no events of x5-pump in events.jsonl")
    check(all(e.get("device_type") == "infusion-pump" for e in events),
          f"events of x5-pump without its type: {events[:3]}")
    others = [e for e in ctx.hub.broker.events() if e.get("device") == "mon-0001"]
    check(others and all("device_type" not in e for e in others),
          "events of an untyped device carry a device_type")


@case("slow connections", only="vigil")
def _(ctx):
    socks = []
    ctx.defer(lambda: [s.close() for s in socks])
    anon = ctx.hub.broker.anon_port
    for i in range(12):
        s = raw_socket(anon, "127.0.0.5")
        s.sendall(m.connect(version=m.V5, client_id=f"slow-{i}", keep_alive=65535))
        socks.append(s)
    for i in range(12):
        socks.append(raw_socket(ctx.hub.broker.port, "127.0.0.5"))
    expect_alerts(ctx, ["slow_connections"], "127.0.0.5")


@case("$SYS and wildcard probing by a device", only="vigil")
def _(ctx):
    password = fixture_of(ctx).passwords["x1-probe"]
    client = paho_client(ctx, "x1-probe", "127.0.0.6", password)
    for flt in ("$SYS/#", "#", "north/icu3/+/mon-0001/#"):
        client.subscribe(flt, qos=0)
    expect_alerts(ctx, ["sys_probe", "wildcard_probe", "topic_outside_subtree"], "x1-probe")


@case("malformed burst", only="vigil")
def _(ctx):
    for i in range(12):
        s = raw_socket(ctx.hub.broker.port, "127.0.0.7")
        # A PUBLISH before any CONNECT, then bytes that are no packet.
        s.sendall(b"\x30\x05\x00\x01a\xff\xff" + bytes([0xF0, 0x00]))
        time.sleep(0.05)
        s.close()
    expect_alerts(ctx, ["malformed_burst"], "127.0.0.7")


@case("unknown device", only="vigil")
def _(ctx):
    out = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(ctx.hub.broker.port),
                          "-A", "127.0.0.8", "-i", "ghost-0001", "-u", "ghost-0001", "-P",
                          "whatever", "-t", "north/icu3/room999/ghost-0001/heart_rate", "-m",
                          "70"], capture_output=True, text=True, timeout=30)
    check(out.returncode != 0, "an unknown device was accepted")
    expect_alerts(ctx, ["unknown_device"], "ghost-0001")


@case("value out of physiological range", only="vigil")
def _(ctx):
    password = fixture_of(ctx).passwords["x4-range"]
    client = paho_client(ctx, "x4-range", "127.0.0.9", password)
    payload = json.dumps([{"bn": "x4-range/", "n": "heart_rate", "u": "beat/min", "v": 400}])
    info = client.publish("north/icu3/room904/x4-range/heart_rate", payload, qos=1)
    info.wait_for_publish(10)
    expect_alerts(ctx, ["value_out_of_range"], "x4-range")


@case("silent monitor", only="vigil")
def _(ctx):
    # A bedside monitor beside the fleet, publishing SenML heart rates every
    # 0.2 s, stopped after it learned (learning_s 10).
    password = fixture_of(ctx).passwords["mon-0021"]
    client = paho_client(ctx, "mon-0021", "127.0.0.10", password)
    topic = "north/icu3/room321/mon-0021/heart_rate"
    for i in range(70):
        payload = json.dumps([{"bn": "mon-0021/", "n": "heart_rate", "u": "beat/min",
                               "v": 70 + i % 5}])
        client.publish(topic, payload, qos=0)
        time.sleep(0.2)
    client.disconnect()
    client.loop_stop()
    start = time.monotonic()
    got = expect_alerts(ctx, ["device_silent"], "mon-0021")
    silent = [a for a in got if a["rule"] == "device_silent"]
    check(all(a["device"] == "mon-0021" for a in silent),
          f"device_silent for other devices: {[a['device'] for a in silent]}")
    ctx.log("silence detected after", round(time.monotonic() - start, 1), "s")


@case("benign fleet at speed 20 raises nothing", only="vigil", needs="benign")
def _(ctx):
    hub = ctx.fixture.new_hub("benign", 20)
    ctx.hub = hub
    time.sleep(60)
    got = hub.alerts()
    hub.stop_fleet()
    for a in got:
        ctx.log("alert", a["rule"], a["device"], a["explanation"])
    check(not got, f"{len(got)} alerts from the benign fleet: "
          + "; ".join(f"{a['rule']} {a['device']}" for a in got[:5]))


@case("report has a mean time to detect", only="vigil")
def _(ctx):
    report = json.loads(run_vigil(["report", "--json", "--data-dir",
                                   ctx.hub.broker.data_dir]))
    ctx.log("report", json.dumps(report))
    check(report.get("mttd_s") is not None, f"mttd_s is null: {report}")


if __name__ == "__main__":
    sys.exit(harness.run("e2e/engine", Fixture))
