#!/usr/bin/python3
"""`vigil sim` with a mixed fleet of MQTT, CoAP and MQTT-SN devices, end to end.

Usage: /usr/bin/python3 tests/e2e/sim/run.py [NAME-SUBSTRING...]

Each case starts its own `vigil serve` with an MQTT listener on 127.0.0.1
and CoAP and MQTT-SN listeners, over DTLS on [::1] with --psk or plain on
127.0.0.1 with --anonymous, and runs a small fleet with `vigil sim`. A paho
subscriber on `#` must receive SenML measurements and statuses from
devices of all three protocols, the simulator's summary must show every
confirmable and QoS 1/2 message acknowledged, and events.jsonl must
record the logins. The fleet uses the built-in model (--model) so the
values do not depend on recordings being present. Every case is vigil-only.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))

import harness  # noqa: E402
from broker import SANITIZER_PATTERNS, Broker, BrokerError, free_udp_ports, vigil_binary  # noqa: E402
from harness import case, check, check_equal  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

MONITORS = ["mon-0001", "mon-0002"]
WEARABLES = ["wear-0001", "wear-0002"]
SENSORS = ["sens-0001", "sens-0002"]
# The demo's topic base, so that every device shows under north/ in the station.
NORTH_BASE = "north/%u/%t/%d/"
SIM_SECONDS = 6


def run_vigil(args, timeout=60):
    out = subprocess.run([vigil_binary()] + args, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise AssertionError(f"vigil {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout



def write_private(path, lines):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(line + "\n" for line in lines)


class Hub(Broker):
    """vigil serve with an MQTT listener and the two UDP front ends."""

    def __init__(self, log_dir, template, name, dtls, topic_base=None):
        yaml = f'gateway:\n  topic_base: "{topic_base}"\n' if topic_base else None
        super().__init__(log_dir, name=name, anonymous=not dtls, kind="vigil", extra_yaml=yaml)
        if template is not None:
            shutil.rmtree(self.data_dir)
            shutil.copytree(template, self.data_dir)
        self.dtls = dtls
        if dtls:
            self.udp_host = "::1"
            self.coap_port, self.mqttsn_port = free_udp_ports(["::1"] * 2, avoid=[self.port])
        else:
            self.udp_host = "127.0.0.1"
            self.coap_port, self.mqttsn_port = free_udp_ports(["127.0.0.1"] * 2,
                                                              avoid=[self.port])

    def udp_address(self, port):
        return f"[{self.udp_host}]:{port}" if self.dtls else f"{self.udp_host}:{port}"

    def _vigil_command(self):
        cmd = [vigil_binary(), "serve", "--data-dir", self.data_dir,
               "--mqtt", f"127.0.0.1:{self.port}"]
        if self.dtls:
            cmd += ["--coaps", self.udp_address(self.coap_port),
                    "--mqttsn-dtls", self.udp_address(self.mqttsn_port), "--psk"]
        else:
            cmd += ["--coap", self.udp_address(self.coap_port),
                    "--mqttsn", self.udp_address(self.mqttsn_port), "--anonymous"]
        if self.extra_yaml:
            path = os.path.join(self.workdir, "vigil.yaml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.extra_yaml)
            cmd += ["-c", path]
        return cmd


class Subscriber:
    """A paho client on `#` that keeps every message it receives."""

    def __init__(self, ctx, port, username=None, password=None):
        self.ctx = ctx
        self.messages = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        # vigil requires an authenticated client to use its device id.
        self.c = mqtt.Client(client_id=username or "sim-e2e-subscriber", protocol=mqtt.MQTTv311)
        if username:
            self.c.username_pw_set(username, password)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        check(self.connected.wait(10), "subscriber did not connect within 10 s")
        ctx.defer(self.close)

    def _on_connect(self, client, userdata, flags, rc):
        self.ctx.log("subscriber CONNACK", rc)
        if rc == 0:
            result, mid = client.subscribe("#", qos=1)
            self.ctx.log("subscribe #", result, mid)
            time.sleep(0.2)
            self.connected.set()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def by_topic(self):
        out = {}
        with self.lock:
            for topic, payload in self.messages:
                out.setdefault(topic, []).append(payload)
        return out


class Fixture:
    """Provisions every device once; each case copies the data directory."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.template = os.path.join(log_dir, "template")
        self.creds = os.path.join(log_dir, "credentials")
        self.psk = os.path.join(log_dir, "psk")
        self.wrong_psk = os.path.join(log_dir, "psk-wrong")
        self.passwords = {}
        self.hubs = []
        self._provision()

    def _add(self, device, extra):
        out = run_vigil(["device", "add", device, "--data-dir", self.template, "--quiet"] + extra)
        return out.strip().splitlines()

    def _provision(self):
        shutil.rmtree(self.template, ignore_errors=True)
        os.makedirs(self.template, mode=0o700)
        keys = {}
        for device in MONITORS:
            self.passwords[device] = self._add(device, [])[0]
        for device in WEARABLES + SENSORS:
            kind = "wearable" if device in WEARABLES else "sensor"
            lines = self._add(device, ["--psk", "--type", kind, "--unit", "icu3"])
            self.passwords[device], keys[device] = lines[0], lines[1]
        self.passwords["central"] = self._add("central", ["--role", "monitor", "--no-cert"])[0]
        write_private(self.creds, [f"{d} {self.passwords[d]}" for d in MONITORS])
        write_private(self.psk, [f"{d} {keys[d]}" for d in WEARABLES + SENSORS])
        # Same length, other key: the handshake must fail.
        write_private(self.wrong_psk, [f"{d} {'ab' * 32}" for d in WEARABLES + SENSORS])

    def new_hub(self, ctx, name, dtls, topic_base=None, provisioned=True):
        hub = Hub(self.log_dir, self.template if provisioned else None, name, dtls, topic_base)
        self.hubs.append(hub)
        ctx.log("hub:", " ".join(hub._vigil_command()))
        hub.start()
        ctx.defer(self._stop_hub, hub)
        return hub

    def _stop_hub(self, hub):
        self.hubs.remove(hub)
        hub.stop()

    def before(self, c, ctx):
        pass

    def after(self, c, ctx):
        for hub in self.hubs:
            hub.check_alive()

    def on_failure(self, c, ctx, exc):
        for hub in self.hubs:
            ctx.log("hub stderr tail:\n" + hub.stderr_tail())

    def close(self):
        for hub in list(self.hubs):
            hub.stop()


# ---- helpers -----------------------------------------------------------

def run_sim(ctx, hub, args, seconds=SIM_SECONDS, expect_status=0):
    cmd = [vigil_binary(), "sim", "--port", str(hub.port), "--duration", str(seconds),
           "--speed", "2", "--progress", "2", "--model",
           "--coap", hub.udp_address(hub.coap_port),
           "--mqttsn", hub.udp_address(hub.mqttsn_port)] + args
    ctx.log("sim:", " ".join(cmd))
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
    ctx.log("sim exit status", out.returncode)
    ctx.log("sim stdout:\n" + out.stdout)
    ctx.log("sim stderr:\n" + out.stderr)
    check(not SANITIZER_PATTERNS.search(out.stderr), "sanitizer error in vigil sim's stderr")
    check_equal(out.returncode, expect_status, "vigil sim exit status")
    return out


def summary_line(stdout, prefix):
    """Returns the summary line starting with prefix."""
    for line in stdout.splitlines():
        if line.strip().startswith(prefix):
            return line.strip()
    raise AssertionError(f"no summary line starting with {prefix!r}")


def summary_fields(stdout, prefix, pattern):
    """Matches pattern against the summary line starting with prefix and
    returns its named groups as integers."""
    line = summary_line(stdout, prefix)
    m = re.search(pattern, line)
    if m is None:
        raise AssertionError(f"summary line {line!r} does not match {pattern!r}")
    return {k: int(v) for k, v in m.groupdict().items()}


COAP_LINE = (r"CoAP \((?P<devices>\d+) wearables\): confirmable (?P<con>\d+) \((?P<acked>\d+) "
             r"acknowledged, (?P<rejected>\d+) rejected, (?P<timed_out>\d+) timed out, "
             r"(?P<retransmissions>\d+) retransmissions\), non-confirmable (?P<non>\d+)")
SN_LINE = (r"MQTT-SN \((?P<devices>\d+) sensors\): QoS 0: (?P<qos0>\d+), QoS 1: (?P<qos1>\d+) "
           r"\((?P<acked1>\d+) acknowledged\), QoS 2: (?P<qos2>\d+) \((?P<completed2>\d+) "
           r"completed\); (?P<connects>\d+) connects, (?P<refused>\d+) refused, "
           r"(?P<rejected>\d+) rejected, (?P<lost>\d+) lost, (?P<sleeps>\d+) sleeps, "
           r"(?P<wakes>\d+) wakes")
LINKS_LINE = (r"UDP links: (?P<sessions>\d+) sessions \((?P<resumed>\d+) resumed\), "
              r"(?P<failures>\d+) failed attempts")


def check_summary(stdout, wearables, sensors):
    coap = summary_fields(stdout, "CoAP (", COAP_LINE)
    check_equal(coap["devices"], wearables, "wearables in the summary")
    check(coap["con"] >= wearables, f"each wearable sent a confirmable status: {coap}")
    check_equal(coap["acked"], coap["con"], "confirmable requests acknowledged")
    check_equal(coap["rejected"], 0, "CoAP requests rejected")
    check_equal(coap["timed_out"], 0, "CoAP requests timed out")
    check(coap["non"] >= wearables * 3, f"wearables sent non-confirmable measurements: {coap}")
    sn = summary_fields(stdout, "MQTT-SN (", SN_LINE)
    check_equal(sn["devices"], sensors, "sensors in the summary")
    check(sn["qos0"] >= sensors * 3, f"sensors published QoS 0 measurements: {sn}")
    check(sn["qos1"] >= sensors, f"each sensor published a QoS 1 status: {sn}")
    check_equal(sn["acked1"], sn["qos1"], "QoS 1 messages acknowledged")
    check_equal(sn["completed2"], sn["qos2"], "QoS 2 messages completed")
    check(sn["connects"] >= sensors, f"each sensor connected: {sn}")
    check_equal(sn["refused"], 0, "MQTT-SN connections refused")
    check_equal(sn["rejected"], 0, "MQTT-SN messages rejected")
    check_equal(sn["lost"], 0, "MQTT-SN messages lost")


def check_senml(ctx, received, topic, device, metric, unit, low, high):
    payloads = received.get(topic)
    check(payloads, f"no message on {topic}; topics seen: {sorted(received)[:40]}")
    pack = json.loads(payloads[-1])
    check(isinstance(pack, list) and pack, f"{topic}: payload is no SenML pack: {payloads[-1]!r}")
    rec = pack[0]
    check_equal(rec.get("bn"), f"{device}/", f"{topic}: SenML base name")
    check_equal(rec.get("n"), metric, f"{topic}: SenML name")
    check_equal(rec.get("u"), unit, f"{topic}: SenML unit")
    check(low <= rec.get("v", -1) <= high, f"{topic}: value {rec.get('v')} outside {low}..{high}")
    ctx.log("ok", topic, len(payloads), "messages")


def check_status(received, topic, device, protocol):
    payloads = received.get(topic)
    check(payloads, f"no status on {topic}")
    states = [json.loads(p) for p in payloads]
    check(any(s.get("state") == "online" for s in states), f"{topic}: no online status")
    check(all(s.get("device") == device for s in states), f"{topic}: wrong device in {states}")
    if protocol:
        check(all(s.get("protocol") == protocol for s in states), f"{topic}: protocol {states}")


def check_all_protocols(ctx, received, wearable_base, sensor_rooms):
    """A heart rate, SpO2, respiratory rate and temperature from one device of
    each protocol, and their statuses."""
    mqtt_prefix = "north/icu3/room301/mon-0001/"
    coap_prefix = wearable_base.replace("%u", "icu3").replace("%t", "wearable").replace(
        "%d", "wear-0001")
    sn_prefix = f"north/icu3/room{sensor_rooms}/sens-0001/"
    for prefix, device in ((mqtt_prefix, "mon-0001"), (coap_prefix, "wear-0001"),
                           (sn_prefix, "sens-0001")):
        check_senml(ctx, received, prefix + "heart_rate", device, "heart_rate", "beat/min", 20, 250)
        check_senml(ctx, received, prefix + "spo2", device, "spo2", "/", 0.5, 1.0)
        check_senml(ctx, received, prefix + "resp_rate", device, "resp_rate", "1/min", 2, 60)
        check_senml(ctx, received, prefix + "temperature", device, "temperature", "Cel", 30, 43)
    check_status(received, mqtt_prefix + "status", "mon-0001", None)
    check_status(received, coap_prefix + "status", "wear-0001", "CoAP")
    check_status(received, sn_prefix + "status", "sens-0001", "MQTT-SN")


def check_logins(hub, devices):
    """Every UDP device logged in over its protocol, with its DTLS identity."""
    def done(evs):
        seen = {(e.get("proto"), e.get("device")) for e in evs if e.get("type") == "auth_success"}
        return all((proto, d) in seen for proto, d in devices)

    evs = hub.wait_events(done, timeout=5)
    if evs is None:
        seen = sorted({(e.get("proto"), e.get("device")) for e in hub.events()
                       if e.get("type") == "auth_success"})
        raise AssertionError(f"auth_success events missing; expected {devices}, seen {seen}")


def check_publish_events(hub):
    """The security engine saw the UDP devices' publishes, by protocol."""
    wanted = {("coap", "wear-0001"), ("mqtt-sn", "sens-0001")}

    def done(evs):
        seen = {(e.get("proto"), e.get("device")) for e in evs if e.get("type") == "publish"}
        return wanted <= seen

    check(hub.wait_events(done, timeout=5) is not None,
          f"events.jsonl has no publish events of {sorted(wanted)}")


def udp_devices():
    return [("coap", d) for d in WEARABLES] + [("mqtt-sn", d) for d in SENSORS]


def mixed_args(fixture):
    return ["--credentials", fixture.creds, "--devices", str(len(MONITORS)),
            "--coap-devices", str(len(WEARABLES)), "--mqttsn-devices", str(len(SENSORS))]


# ---- cases ---------------------------------------------------------------

@case("mixed fleet over DTLS with PSK", only="vigil")
def mixed_psk(ctx):
    f = ctx.fixture
    hub = f.new_hub(ctx, "psk", dtls=True, topic_base=NORTH_BASE)
    sub = Subscriber(ctx, hub.port, "central", f.passwords["central"])
    out = run_sim(ctx, hub, mixed_args(f) + ["--psk-file", f.psk,
                                             "--coap-topic-base", NORTH_BASE])
    check_summary(out.stdout, len(WEARABLES), len(SENSORS))
    links = summary_fields(out.stdout, "UDP links:", LINKS_LINE)
    check_equal(links["failures"], 0, "failed DTLS attempts")
    check_equal(links["sessions"], len(WEARABLES) + len(SENSORS), "DTLS sessions")
    time.sleep(0.5)
    check_all_protocols(ctx, sub.by_topic(), NORTH_BASE, 303)
    check_logins(hub, udp_devices())
    check_publish_events(hub)


@case("station shows all three protocols", only="vigil")
def station_view(ctx):
    f = ctx.fixture
    hub = f.new_hub(ctx, "station", dtls=True, topic_base=NORTH_BASE)
    creds = os.path.join(hub.workdir, "station-credentials")
    write_private(creds, [f"central {f.passwords['central']}"])
    sim = subprocess.Popen(
        [vigil_binary(), "sim", "--port", str(hub.port), "--duration", "12", "--progress", "0",
         "--model", "--coap", hub.udp_address(hub.coap_port),
         "--mqttsn", hub.udp_address(hub.mqttsn_port), "--psk-file", f.psk,
         "--coap-topic-base", NORTH_BASE] + mixed_args(f),
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx.defer(sim.wait, 30)
    out = subprocess.run([vigil_binary(), "station", "--port", str(hub.port), "--credentials",
                          creds, "--username", "central", "--once", "--interval", "5", "--plain"],
                         capture_output=True, text=True, timeout=60)
    ctx.log("station output:\n" + out.stdout + out.stderr)
    check_equal(out.returncode, 0, "vigil station exit status")
    rows = {line.split()[1]: line for line in out.stdout.splitlines()
            if len(line.split()) > 2 and re.match(r"(mon|wear|sens)-\d{4}$", line.split()[1])}
    for device in MONITORS + WEARABLES + SENSORS:
        check(device in rows, f"station has no row for {device}")
        check("online" in rows[device], f"station row of {device}: {rows[device]!r}")
    check(rows["wear-0001"].split()[0] == "wearable", f"wearable room: {rows['wear-0001']!r}")


@case("mixed fleet over DTLS with certificates", only="vigil")
def mixed_certificates(ctx):
    f = ctx.fixture
    hub = f.new_hub(ctx, "cert", dtls=True)
    sub = Subscriber(ctx, hub.port, "central", f.passwords["central"])
    out = run_sim(ctx, hub, mixed_args(f) + [
        "--cert-dir", os.path.join(hub.data_dir, "provision"),
        "--ca-file", os.path.join(hub.data_dir, "pki", "ca.crt")])
    check_summary(out.stdout, len(WEARABLES), len(SENSORS))
    time.sleep(0.5)
    check_all_protocols(ctx, sub.by_topic(), "hospital/%u/%t/%d/", 303)
    check_logins(hub, udp_devices())


@case("plain UDP on anonymous listeners", only="vigil")
def mixed_plain(ctx):
    f = ctx.fixture
    # An empty inventory: vigil refuses an anonymous MQTT client that uses
    # the client id of a provisioned device.
    hub = f.new_hub(ctx, "plain", dtls=False, provisioned=False)
    sub = Subscriber(ctx, hub.port)
    out = run_sim(ctx, hub, ["--anonymous", "--devices", str(len(MONITORS)),
                             "--coap-devices", str(len(WEARABLES)),
                             "--mqttsn-devices", str(len(SENSORS))])
    check_summary(out.stdout, len(WEARABLES), len(SENSORS))
    time.sleep(0.5)
    # Without an identity the wearables name their topics themselves, from
    # the same topic base.
    check_all_protocols(ctx, sub.by_topic(), "hospital/%u/%t/%d/", 303)


@case("sleeping MQTT-SN sensors", only="vigil")
def sleeping_sensors(ctx):
    f = ctx.fixture
    hub = f.new_hub(ctx, "sleep", dtls=True)
    sub = Subscriber(ctx, hub.port, "central", f.passwords["central"])
    out = run_sim(ctx, hub, ["--devices", "0", "--mqttsn-devices", str(len(SENSORS)),
                             "--psk-file", f.psk, "--mqttsn-sleep", "1.5"], seconds=8)
    sn = summary_fields(out.stdout, "MQTT-SN (", SN_LINE)
    ctx.log("MQTT-SN summary", sn)
    check(sn["sleeps"] >= 2 * len(SENSORS), f"each sensor slept at least twice: {sn}")
    check(sn["wakes"] >= len(SENSORS), f"each sensor woke with PINGREQ: {sn}")
    check(sn["connects"] > len(SENSORS), f"sensors reconnected after sleeping: {sn}")
    check_equal(sn["lost"], 0, "MQTT-SN messages lost")
    time.sleep(0.5)
    received = sub.by_topic()
    # With --devices 0 the sensors' rooms start at --first-room.
    for device, room in (("sens-0001", 301), ("sens-0002", 302)):
        check_senml(ctx, received, f"north/icu3/room{room}/{device}/heart_rate", device,
                    "heart_rate", "beat/min", 20, 250)
    sleeps = hub.wait_events(
        lambda evs: sum(1 for e in evs if e.get("proto") == "mqtt-sn"
                        and e.get("type") == "auth_success") >= len(SENSORS), timeout=5)
    check(sleeps is not None, "no MQTT-SN logins in events.jsonl")


@case("wrong PSK fails the handshake", only="vigil")
def wrong_psk(ctx):
    f = ctx.fixture
    hub = f.new_hub(ctx, "wrongpsk", dtls=True)
    # The hub drops the Finished it cannot decrypt without an alert, so the
    # devices give up after their handshake timeout (10 s).
    out = run_sim(ctx, hub, ["--devices", "0", "--coap-devices", "1", "--mqttsn-devices", "1",
                             "--psk-file", f.wrong_psk], seconds=12, expect_status=1)
    check("link to" in out.stderr and "failed" in out.stderr,
          "vigil sim did not report the failed DTLS link")
    check("no device could connect" in out.stderr, "vigil sim did not report that nothing connected")
    links = summary_fields(out.stdout, "UDP links:", LINKS_LINE)
    check_equal(links["sessions"], 0, "DTLS sessions with a wrong key")
    check(links["failures"] >= 2, f"each device counted a failed handshake: {links}")
    evs = hub.wait_events(lambda evs: any(e.get("type") == "tls_failure" for e in evs), timeout=5)
    check(evs is not None, "the hub recorded no tls_failure event")
    check(not any(e.get("type") == "auth_success" and e.get("device") in ("wear-0001", "sens-0001")
                  for e in hub.events()), "a device logged in with a wrong PSK")


@case("UDP devices need DTLS keys or --anonymous", only="vigil")
def usage_errors(ctx):
    f = ctx.fixture
    cases = [
        (["--devices", "0", "--coap-devices", "1"], "need --psk-file FILE or --cert-dir DIR"),
        (["--devices", "0", "--coap-devices", "1", "--psk-file", f.psk, "--cert-dir", "x"],
         "not both"),
        (["--devices", "0"], "no devices"),
        (["--anonymous", "--coap", "hub.example:5683", "--coap-devices", "1"], "invalid address"),
        (["--anonymous", "--coap-devices", "1", "--coap-topic-base", "x/%q/"],
         "invalid --coap-topic-base"),
    ]
    for args, text in cases:
        out = subprocess.run([vigil_binary(), "sim"] + args, capture_output=True, text=True,
                             timeout=30)
        ctx.log("vigil sim", args, "->", out.returncode, out.stderr.strip()[:300])
        check_equal(out.returncode, 2, f"exit status of vigil sim {' '.join(args)}")
        check(text in out.stderr, f"vigil sim {' '.join(args)}: expected {text!r} in stderr")
    out = subprocess.run([vigil_binary(), "sim", "--devices", "0", "--coap-devices", "1",
                          "--psk-file", f.creds, "--duration", "1"],
                         capture_output=True, text=True, timeout=30)
    ctx.log("PSK file without the device:", out.returncode, out.stderr.strip()[:300])
    check_equal(out.returncode, 1, "exit status with a PSK file that lacks the device")
    check("no PSK for wear-0001" in out.stderr, "missing PSK not named")


def main():
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        print("python3-paho-mqtt is missing; run make deps", file=sys.stderr)
        return 1
    return harness.run("sim", Fixture)


if __name__ == "__main__":
    sys.exit(main())
