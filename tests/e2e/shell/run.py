#!/usr/bin/python3
"""End-to-end tests with the mosquitto_pub and mosquitto_sub command-line clients.

Usage: /usr/bin/python3 tests/e2e/shell/run.py [NAME-SUBSTRING...]
Each case runs the real clients as subprocesses with -V mqttv311 or
-V mqttv5 against a fresh loopback broker, and against vigil also checks
events.jsonl.
"""

import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))

import harness  # noqa: E402
from broker import Broker  # noqa: E402
from harness import case, check, check_equal  # noqa: E402

VERSIONS = ("mqttv311", "mqttv5")


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.brokers = {}

    def before(self, c, ctx):
        key = c.needs or "anon"
        b = self.brokers.get(key)
        if b is None or not b.alive():
            # The authentication cases fail several logins from 127.0.0.1 on
            # purpose, more than vigil's default burst of 5 allows.
            lenient = "auth:\n  failure_burst: 100\n  failures_per_minute: 6000\n"
            # The smallest event file size, so a few hundred publishes rotate it.
            rotating = "event_file_max_bytes: 65536\nevent_files_kept: 3\n"
            extra = {"anon": None, "auth": lenient, "rotate": rotating}[key]
            b = Broker(self.log_dir, name=f"shell-{key}", anonymous=key != "auth",
                       extra_yaml=extra)
            b.start()
            self.brokers[key] = b
        ctx.broker = b
        ctx.port = b.port
        ctx.prefix = f"shell{c.number}"
        ctx.events_before = len(b.events())
        ctx.expected = []

    def after(self, c, ctx):
        ctx.broker.check_alive()
        if ctx.vigil:
            for client_id, types in ctx.expected:
                def ok(evs, client_id=client_id, types=types):
                    seen = {e.get("type") for e in evs[ctx.events_before:]
                            if e.get("client_id") == client_id}
                    return all(t in seen for t in types)
                if ctx.broker.wait_events(ok) is None:
                    got = [e.get("type") for e in ctx.broker.events()[ctx.events_before:]
                           if e.get("client_id") == client_id]
                    raise AssertionError(f"events for {client_id}: expected {types}, got {got}")

    def on_failure(self, c, ctx, exc):
        b = self.brokers.get(c.needs or "anon")
        if b is not None:
            ctx.log("broker stderr tail:\n" + b.stderr_tail())

    def close(self):
        for b in self.brokers.values():
            b.stop()


def base_args(ctx, version, client_id):
    return ["-h", "127.0.0.1", "-p", str(ctx.port), "-V", version, "-i", client_id]


class Sub:
    """A running mosquitto_sub that prints topic and payload per message."""

    def __init__(self, ctx, version, client_id, topic, qos=0, count=None, extra=()):
        args = ["mosquitto_sub"] + base_args(ctx, version, client_id) + [
            "-t", topic, "-q", str(qos), "-F", "%t|%r|%q|%p", "-W", "15"]
        if count is not None:
            args += ["-C", str(count)]
        args += list(extra)
        ctx.log("run:", " ".join(args))
        self.ctx = ctx
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        ctx.defer(self.stop)
        # mosquitto_sub has no "subscribed" output, so wait for the broker
        # to have the subscription before anything is published.
        time.sleep(0.5)

    def lines(self, timeout=10.0):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            self.ctx.log("mosquitto_sub timed out; stdout:", out, "stderr:", err)
            raise AssertionError("mosquitto_sub did not receive the expected count in time") from None
        self.ctx.log("mosquitto_sub exit", self.proc.returncode, "stdout:", out, "stderr:", err)
        check_equal(self.proc.returncode, 0, f"mosquitto_sub exit status (stderr: {err.strip()})")
        return [line.split("|", 3) for line in out.splitlines()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pub(ctx, version, client_id, topic, message, qos=0, extra=(), expect_status=0):
    args = ["mosquitto_pub"] + base_args(ctx, version, client_id) + [
        "-t", topic, "-m", message, "-q", str(qos)] + list(extra)
    ctx.log("run:", " ".join(args))
    out = subprocess.run(args, capture_output=True, text=True, timeout=20)
    ctx.log("mosquitto_pub exit", out.returncode, "stdout:", out.stdout, "stderr:", out.stderr)
    if expect_status is not None:
        check_equal(out.returncode, expect_status,
                    f"mosquitto_pub exit status (stderr: {out.stderr.strip()})")
    return out


def short(version):
    return "v5" if version == "mqttv5" else "v311"


def qos_case(version, qos):
    @case(f"{short(version)} pub/sub QoS {qos}")
    def _(ctx):
        topic = f"{ctx.prefix}/q"
        sub_id = f"{ctx.prefix}-sub"
        pub_id = f"{ctx.prefix}-pub"
        s = Sub(ctx, version, sub_id, topic, qos=qos, count=3)
        for i in range(3):
            pub(ctx, version, pub_id, topic, f"m{i}", qos=qos)
        rows = s.lines()
        check_equal([r[3] for r in rows], ["m0", "m1", "m2"], "payloads")
        check_equal({r[2] for r in rows}, {str(qos)}, "delivered QoS")
        ctx.expected.append((pub_id, ("auth_success", "publish", "disconnect")))
        ctx.expected.append((sub_id, ("auth_success", "subscribe")))


for _v in VERSIONS:
    for _q in (0, 1, 2):
        qos_case(_v, _q)


def retained_case(version):
    @case(f"{short(version)} retained message")
    def _(ctx):
        topic = f"{ctx.prefix}/r"
        pub(ctx, version, f"{ctx.prefix}-p1", topic, "stored", qos=1, extra=["-r"])
        s = Sub(ctx, version, f"{ctx.prefix}-s1", topic, qos=1, count=1)
        rows = s.lines()
        check_equal([(r[1], r[3]) for r in rows], [("1", "stored")], "retain flag and payload")
        # An empty retained message clears it; a new subscriber then times out.
        pub(ctx, version, f"{ctx.prefix}-p2", topic, "", qos=1, extra=["-r"])
        args = ["mosquitto_sub"] + base_args(ctx, version, f"{ctx.prefix}-s2") + [
            "-t", topic, "-C", "1", "-W", "2"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=20)
        ctx.log("mosquitto_sub after clear:", out.returncode, out.stdout, out.stderr)
        check_equal(out.stdout, "", "output after the retained message was cleared")
        check(out.returncode != 0, "mosquitto_sub -W 2 should time out with a non-zero status")
        ctx.expected.append((f"{ctx.prefix}-p1", ("auth_success", "publish", "disconnect")))
        ctx.expected.append((f"{ctx.prefix}-s1", ("auth_success", "subscribe")))


for _v in VERSIONS:
    retained_case(_v)


@case("v5 -D user-property content-type expiry")
def _(ctx):
    topic = f"{ctx.prefix}/props"
    s = Sub(ctx, "mqttv5", f"{ctx.prefix}-sub", topic, qos=1, count=1,
            extra=["-F", "%t|%r|%q|%p|%P|%C|%E"])
    pub(ctx, "mqttv5", f"{ctx.prefix}-pub", topic, "72", qos=1, extra=[
        "-D", "publish", "user-property", "unit", "bpm",
        "-D", "publish", "content-type", "text/plain",
        "-D", "publish", "message-expiry-interval", "60"])
    out, _ = s.proc.communicate(timeout=10)
    ctx.log("mosquitto_sub output:", out)
    fields = out.strip().split("|")
    check_equal(fields[:4], [topic, "0", "1", "72"], "topic, retain, QoS, payload")
    check_equal(fields[4], "unit:bpm", "user property (%P)")
    check_equal(fields[5], "text/plain", "content type (%C)")
    expiry = int(fields[6]) if fields[6].isdigit() else -1
    check(0 < expiry <= 60, f"message expiry interval {fields[6]!r} (%E)")
    ctx.expected.append((f"{ctx.prefix}-pub", ("auth_success", "publish", "disconnect")))
    ctx.expected.append((f"{ctx.prefix}-sub", ("auth_success", "subscribe")))


@case("v5 message expiry drops queued message")
def _(ctx):
    topic = f"{ctx.prefix}/exp"
    cid = f"{ctx.prefix}-sub"
    # Register a persistent session, then go offline.
    first = ["mosquitto_sub"] + base_args(ctx, "mqttv5", cid) + [
        "-t", topic, "-q", "1", "-c", "-x", "600", "-E"]
    out = subprocess.run(first, capture_output=True, text=True, timeout=20)
    check_equal(out.returncode, 0, f"mosquitto_sub -E status ({out.stderr.strip()})")
    pub(ctx, "mqttv5", f"{ctx.prefix}-pub", topic, "short", qos=1,
        extra=["-D", "publish", "message-expiry-interval", "1"])
    pub(ctx, "mqttv5", f"{ctx.prefix}-pub", topic, "long", qos=1,
        extra=["-D", "publish", "message-expiry-interval", "300"])
    time.sleep(2.5)
    again = ["mosquitto_sub"] + base_args(ctx, "mqttv5", cid) + [
        "-t", topic, "-q", "1", "-c", "-x", "0", "-W", "3", "-F", "%p"]
    out = subprocess.run(again, capture_output=True, text=True, timeout=20)
    ctx.log("second mosquitto_sub:", out.returncode, out.stdout, out.stderr)
    check_equal(out.stdout.split(), ["long"], "messages after reconnect")
    ctx.expected.append((cid, ("auth_success", "subscribe", "disconnect")))
    ctx.expected.append((f"{ctx.prefix}-pub", ("auth_success", "publish", "disconnect")))


def auth_case(version):
    @case(f"{short(version)} -u -P authentication", needs="auth")
    def _(ctx):
        dev = f"{ctx.prefix}{short(version)}"
        pw = ctx.broker.add_device(dev)
        topic = f"north/icu3/room305/{dev}/hr"
        s = Sub(ctx, version, f"{dev}", topic, qos=1, count=1, extra=["-u", dev, "-P", pw])
        # A device may open further connections with "<device id>:<suffix>".
        pub(ctx, version, f"{dev}:pub", topic, "80", qos=1, extra=["-u", dev, "-P", pw])
        check_equal([r[3] for r in s.lines()], ["80"], "payload")
        bad = pub(ctx, version, f"{dev}:bad", topic, "81", qos=1,
                  extra=["-u", dev, "-P", "not-the-password"], expect_status=None)
        check(bad.returncode != 0, "mosquitto_pub with a wrong password must fail")
        none = pub(ctx, version, f"{dev}-anon", topic, "82", qos=1, expect_status=None)
        check(none.returncode != 0, "mosquitto_pub without credentials must fail")
        ctx.expected.append((dev, ("auth_success", "subscribe")))
        ctx.expected.append((f"{dev}:bad", ("auth_failure",)))


def foreign_client_id_case(version):
    # mosquitto does not tie client ids to user names, so this runs only
    # against vigil.
    @case(f"{short(version)} foreign client id rejected", needs="auth", only="vigil")
    def _(ctx):
        dev = f"{ctx.prefix}{short(version)}"
        pw = ctx.broker.add_device(dev)
        topic = f"north/icu3/room305/{dev}/hr"
        # A client id that is not the device's own would let one device take
        # over another device's session.
        foreign = pub(ctx, version, f"{dev}-pub", topic, "83", qos=1,
                      extra=["-u", dev, "-P", pw], expect_status=None)
        check(foreign.returncode != 0, "a client id of another identity must be rejected")
        ctx.expected.append((f"{dev}-pub", ("auth_failure",)))


for _v in VERSIONS:
    auth_case(_v)
    foreign_client_id_case(_v)


def event_files(broker):
    """Return {name: [event, ...]} for events.jsonl and its rotated files.

    Every line must be a whole JSON object; a rotation never splits one.
    """
    files = {}
    for name in sorted(os.listdir(broker.data_dir)):
        if not name.startswith("events.jsonl"):
            continue
        with open(os.path.join(broker.data_dir, name), encoding="utf-8") as f:
            text = f.read()
        check(text == "" or text.endswith("\n"), f"{name} ends in a whole line")
        files[name] = [json.loads(line) for line in text.splitlines()]
    return files


def publishes_of(files, client_id):
    return [e for evs in files.values() for e in evs
            if e.get("type") == "publish" and e.get("client_id") == client_id]


@case("events.jsonl rotates by size and reopens on SIGHUP", needs="rotate", only="vigil")
def _(ctx):
    # 800 publish events of about 200 bytes take events.jsonl past 64 KiB
    # twice or more, and three rotated files have room for all of them.
    cid = f"{ctx.prefix}-pub"
    args = ["mosquitto_pub"] + base_args(ctx, "mqttv311", cid) + ["-t", f"{ctx.prefix}/r", "-l"]
    out = subprocess.run(args, input="".join(f"{i}\n" for i in range(800)),
                         capture_output=True, text=True, timeout=30)
    ctx.log("mosquitto_pub -l exit", out.returncode, out.stderr)
    check_equal(out.returncode, 0, "mosquitto_pub -l exit status")
    deadline = time.monotonic() + 10
    while len(publishes_of(event_files(ctx.broker), cid)) < 800 and time.monotonic() < deadline:
        time.sleep(0.1)
    files = event_files(ctx.broker)
    ctx.log("event files:", {name: len(evs) for name, evs in files.items()})
    check_equal(len(publishes_of(files, cid)), 800, "publish events across the event files")
    check("events.jsonl.1" in files, "rotated file events.jsonl.1")
    check("events.jsonl.2" in files, "rotated file events.jsonl.2")
    check("events.jsonl.4" not in files, "at most event_files_kept rotated files")
    for name in files:
        size = os.path.getsize(os.path.join(ctx.broker.data_dir, name))
        check(size <= 65536, f"{name} has {size} bytes, over event_file_max_bytes")

    # As logrotate does without copytruncate: move the file away, then send
    # SIGHUP. New events must go to a new events.jsonl.
    moved = os.path.join(ctx.broker.data_dir, "events.jsonl.moved")
    os.rename(ctx.broker.events_path, moved)
    ctx.broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not os.path.exists(ctx.broker.events_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    check(os.path.exists(ctx.broker.events_path), "events.jsonl opened again after SIGHUP")
    pub(ctx, "mqttv311", f"{ctx.prefix}-after", f"{ctx.prefix}/r", "x")
    after = ctx.broker.wait_events(
        lambda evs: any(e.get("client_id") == f"{ctx.prefix}-after" for e in evs), timeout=5)
    check(after is not None, "events after SIGHUP are written to the new events.jsonl")
    moved_only = {"moved": event_files(ctx.broker)["events.jsonl.moved"]}
    check_equal(publishes_of(moved_only, f"{ctx.prefix}-after"), [],
                "events after SIGHUP in the moved file")


if __name__ == "__main__":
    sys.exit(harness.run("e2e/shell", Fixture))
