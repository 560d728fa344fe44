#!/usr/bin/python3
"""Regression tests for faults found by attacking the CoAP and MQTT-SN
front ends with hostile datagrams and real clients.

Each case states the rule it checks. They run against a vigil with an
anonymous MQTT listener, anonymous plaintext CoAP and MQTT-SN listeners,
and CoAP and MQTT-SN over DTLS with PSK on 127.0.0.1. Devices get a
printable PSK written into devices.db, because coap-client 4.3.1 takes -k
as the key bytes. The two peer-table cases start their own vigil with
gateway.max_peers 20 and wait up to about two minutes each. After every
case the broker must still be running without sanitizer reports. Every
case is vigil-only.

Usage: /usr/bin/python3 tests/raw/break_udp.py [NAME-SUBSTRING...]
"""

import os
import socket
import sqlite3
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e", "mqttsn"))

import harness  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
import snclient as sn  # noqa: E402
from broker import Broker, BrokerError, free_udp_ports, vigil_binary  # noqa: E402
from harness import case, check, check_equal  # noqa: E402
from snbroker import relay_binary  # noqa: E402

QUIET_S = 0.5
CON, ACK = 0, 2
GET, PUT, DELETE = 0x01, 0x03, 0x04
IF_MATCH, OBSERVE, URI_PATH, CONTENT_FORMAT, ACCEPT, BLOCK1 = 1, 6, 11, 12, 17, 27
SENML_CBOR = 112


def uint_opt(v):
    """Encode an unsigned option value in its shortest big-endian form."""
    out = b""
    while v:
        out = bytes([v & 0xFF]) + out
        v >>= 8
    return out


def path_opts(path):
    if path is None:
        return []
    return [(URI_PATH, seg.encode()) for seg in path.strip("/").split("/")]


def option_nibble(v):
    if v < 13:
        return v, b""
    if v < 269:
        return 13, bytes([v - 13])
    return 14, struct.pack(">H", v - 269)


def encode(mtype, mcode, mid, token=b"", options=(), payload=b""):
    """Encode a CoAP datagram (RFC 7252 section 3) from (number, value) options."""
    out = bytes([0x40 | mtype << 4 | len(token), mcode]) + struct.pack(">H", mid) + token
    last = 0
    for num, value in sorted(options, key=lambda o: o[0]):
        delta, delta_ext = option_nibble(num - last)
        length, length_ext = option_nibble(len(value))
        out += bytes([delta << 4 | length]) + delta_ext + length_ext + value
        last = num
    if payload:
        out += b"\xff" + payload
    return out


class Msg:
    """A decoded CoAP reply."""

    def __init__(self, data):
        self.type = data[0] >> 4 & 3
        tkl = data[0] & 15
        self.code = data[1]
        self.mid = struct.unpack(">H", data[2:4])[0]
        self.token = data[4:4 + tkl]
        self.options = []
        self.payload = b""
        i, num = 4 + tkl, 0
        while i < len(data):
            if data[i] == 0xFF:
                self.payload = data[i + 1:]
                break
            delta, length = data[i] >> 4, data[i] & 15
            i += 1
            if delta == 13:
                delta, i = 13 + data[i], i + 1
            elif delta == 14:
                delta, i = 269 + struct.unpack(">H", data[i:i + 2])[0], i + 2
            if length == 13:
                length, i = 13 + data[i], i + 1
            elif length == 14:
                length, i = 269 + struct.unpack(">H", data[i:i + 2])[0], i + 2
            num += delta
            self.options.append((num, data[i:i + length]))
            i += length

    def opt(self, num):
        for n, v in self.options:
            if n == num:
                return v
        return None

    def uint(self, num):
        v = self.opt(num)
        return None if v is None else int.from_bytes(v, "big")

    @property
    def code_text(self):
        return f"{self.code >> 5}.{self.code & 31:02d}"

    def __repr__(self):
        return (f"Msg(type={self.type} code={self.code_text} mid={self.mid} "
                f"token={self.token.hex()} options={self.options} payload={self.payload[:60]!r})")



class UdpBroker(Broker):
    """vigil with MQTT, plaintext CoAP and MQTT-SN, and both over DTLS."""

    def __init__(self, log_dir, name="break-udp", max_peers=10000, max_keep_alive=600):
        super().__init__(log_dir, name=name, anonymous=True, kind="vigil")
        self.max_peers = max_peers
        self.max_keep_alive = max_keep_alive
        self.coap_port, self.coaps_port, self.sn_port, self.sn_dtls_port = free_udp_ports(
            ["127.0.0.1"] * 4, avoid=[self.port])
        self.devices_dir = os.path.join(self.workdir, "devices")
        os.makedirs(self.devices_dir, exist_ok=True)

    def _vigil_command(self):
        path = os.path.join(self.workdir, "vigil.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("listeners:\n"
                    f"  - mqtt: 127.0.0.1:{self.port}\n"
                    "    anonymous: true\n"
                    f"  - coap: 127.0.0.1:{self.coap_port}\n"
                    "    anonymous: true\n"
                    f"  - mqttsn: 127.0.0.1:{self.sn_port}\n"
                    "    anonymous: true\n"
                    f"  - coaps: 127.0.0.1:{self.coaps_port}\n"
                    "    psk: true\n"
                    f"  - mqttsn-dtls: 127.0.0.1:{self.sn_dtls_port}\n"
                    "    psk: true\n"
                    "gateway:\n"
                    f"  max_peers: {self.max_peers}\n"
                    "  coap_idle: 10\n"
                    "  mqttsn_advertise: 0\n"
                    "limits:\n"
                    f"  max_keep_alive: {self.max_keep_alive}\n"
                    # Wrong logins in some cases must not block loopback.
                    "auth:\n"
                    "  failure_burst: 1000\n"
                    "  failures_per_minute: 60000\n")
        return [vigil_binary(), "serve", "--data-dir", self.data_dir, "-c", path]

    def add_psk_device(self, device_id, unit="icu3", dev_type="wearable"):
        """Provision device_id with a printable PSK; return the PSK text."""
        cmd = [vigil_binary(), "device", "add", device_id, "--data-dir", self.data_dir,
               "--out", self.devices_dir, "--quiet", "--psk", "--type", dev_type,
               "--unit", unit]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise BrokerError(f"'{' '.join(cmd)}' failed: {out.stderr.strip()}")
        key = f"psk-{device_id}-0123456789abcdef"
        db = sqlite3.connect(os.path.join(self.data_dir, "devices.db"), timeout=10)
        with db:
            db.execute("UPDATE devices SET psk = ? WHERE id = ?", (key.encode(), device_id))
        db.close()
        # vigil rereads its inventory about once a second.
        time.sleep(1.5)
        return key

    def revoke_device(self, device_id):
        cmd = [vigil_binary(), "device", "revoke", device_id, "--data-dir", self.data_dir]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise BrokerError(f"'{' '.join(cmd)}' failed: {out.stderr.strip()}")


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.broker = None
        self.small = None

    def before(self, c, ctx):
        if c.needs == "small":
            # Each peer-table case fills the table, so it gets its own vigil.
            self.small = UdpBroker(self.log_dir, name="break-udp-small", max_peers=20,
                                   max_keep_alive=10)
            self.small.start()
            ctx.broker = self.small
        else:
            if self.broker is None or not self.broker.alive():
                self.broker = UdpBroker(self.log_dir)
                self.broker.start()
            ctx.broker = self.broker
        ctx.events_before = len(ctx.broker.events())
        ctx.number = c.number

    def after(self, c, ctx):
        ctx.broker.check_alive()
        if c.needs == "small":
            small, self.small = self.small, None
            small.stop()

    def on_failure(self, c, ctx, exc):
        broker = getattr(ctx, "broker", None)
        if broker is not None:
            ctx.log("broker stderr tail:\n" + broker.stderr_tail())
        if self.small is not None:
            small, self.small = self.small, None
            try:
                small.stop()
            except BrokerError as err:
                ctx.log("small broker:", err)

    def close(self):
        if self.broker is not None:
            self.broker.stop()


# -- clients ------------------------------------------------------------------


class Coap:
    """One UDP socket to the anonymous plaintext CoAP listener."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", ctx.broker.coap_port))
        ctx.defer(self.sock.close)
        host, port = self.sock.getsockname()
        self.peer = f"{host}:{port}"

    def send(self, data):
        self.ctx.log("send", data.hex())
        self.sock.send(data)

    def reply(self, wait=3.0):
        """The next datagram, or None when none comes within wait s."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        m = Msg(data)
        self.ctx.log("recv", data.hex(), repr(m))
        return m

    def request(self, mtype, mcode, mid, path, token=b"", options=(), payload=b"", wait=3.0):
        self.send(encode(mtype, mcode, mid, token, list(path_opts(path)) + list(options),
                         payload))
        return self.reply(wait)


class Watcher:
    """A paho subscriber that keeps the raw topic bytes of what it receives."""

    def __init__(self, ctx, topic, client_id):
        self.got = []
        self.client = mqtt.Client(client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", ctx.broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        ctx.defer(self.stop)
        time.sleep(0.5)

    def _on_message(self, client, userdata, message):
        # message.topic decodes UTF-8 and raises on invalid bytes.
        self.got.append((bytes(message._topic), bytes(message.payload)))

    def wait(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.got)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


class Relay:
    """tests/tools/sn_dtls_client between a local plaintext port and the
    MQTT-SN DTLS listener, authenticated with a PSK."""

    def __init__(self, ctx, device_id, key):
        args = [relay_binary(), "--connect", f"127.0.0.1:{ctx.broker.sn_dtls_port}",
                "--psk-identity", device_id, "--psk", key.encode().hex()]
        ctx.log("relay:", " ".join(args[:-1]))
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        ctx.defer(self.close)
        handshake = self.proc.stdout.readline().strip()
        ctx.log("relay:", handshake)
        check(handshake.startswith("handshake ok"), f"DTLS handshake of {device_id}: {handshake}")
        line = self.proc.stdout.readline().strip()
        self.port = int(line.rsplit(":", 1)[1])

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        """Close stdin: the relay sends close_notify and exits."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


def new_events(ctx, predicate):
    return [e for e in ctx.broker.events()[ctx.events_before:] if predicate(e)]


def wait_event(ctx, predicate, what, timeout=5.0):
    evs = ctx.broker.wait_events(lambda es: any(predicate(e) for e in es[ctx.events_before:]),
                                 timeout)
    if evs is None:
        ctx.log("events:", ctx.broker.events()[ctx.events_before:])
        raise AssertionError(f"no event: {what}")
    return [e for e in evs[ctx.events_before:] if predicate(e)][0]


# -- topics must be UTF-8 -------------------------------------------------------
#
# MQTT requires well-formed UTF-8 in every string ([MQTT-1.5.3-1] of 3.1.1,
# [MQTT-1.5.4-1] of 5.0), and a client that receives anything else closes
# the connection. vigil's MQTT decoder rejects such a PUBLISH, so a topic
# from CoAP or MQTT-SN needs the same check. Retained, a topic that is not
# UTF-8 disconnects every subscriber of a matching filter at each SUBSCRIBE.


@case("coap topic not utf-8 rejected", only="vigil")
def coap_topic_not_utf8(ctx):
    watcher = Watcher(ctx, "utf8/#", "utf8-watch-coap")
    raw = Coap(ctx)
    r = raw.request(CON, PUT, 0x0101, None, b"u",
                    [(URI_PATH, b"ps"), (URI_PATH, b"utf8"), (URI_PATH, b"\xc3\x28")], b"1")
    check(r is not None, "no response to PUT /ps/utf8/<C3 28>")
    check(r.code >> 5 == 4, f"PUT with a topic that is not UTF-8 got {r.code_text}, not 4.xx")
    time.sleep(QUIET_S)
    check_equal(watcher.got, [], "messages routed to utf8/#")


@case("mqtt-sn register not utf-8 rejected", only="vigil")
def sn_register_not_utf8(ctx):
    with sn.Client("127.0.0.1", ctx.broker.sn_port, f"utf8-{ctx.number}", log=ctx.log) as c:
        check_equal(c.connect(60), sn.ACCEPTED, "CONNACK")
        c.send(sn.frame(sn.REGISTER, struct.pack(">HH", 0, 1) + b"utf8/\xc3\x28"))
        reply = c.expect(sn.REGACK)
        check_equal(reply.return_code, sn.NOT_SUPPORTED,
                    "REGACK return code for a TopicName that is not UTF-8")


@case("mqtt-sn short topic not utf-8 rejected", only="vigil")
def sn_short_not_utf8(ctx):
    watcher = Watcher(ctx, "#", "utf8-watch-sn")
    with sn.Client("127.0.0.1", ctx.broker.sn_port, f"short-{ctx.number}", log=ctx.log) as c:
        check_equal(c.connect(60), sn.ACCEPTED, "CONNACK")
        c.send(sn.publish(0xC328, b"x", msg_id=7, qos=1, topic_type=sn.SHORT))
        reply = c.expect(sn.PUBACK)
        check(reply.return_code != sn.ACCEPTED,
              "PUBACK accepted a short topic name that is not UTF-8 (C3 28)")
    time.sleep(QUIET_S)
    bad = [t for t, _ in watcher.got if t == b"\xc3\x28"]
    check_equal(bad, [], "messages routed with topic C3 28")


# -- zero-length tokens -----------------------------------------------------------
#
# Tokens are 0 to 8 bytes (RFC 7252 section 3). memcpy(dst, NULL, 0) is
# undefined behaviour in C17, and the sanitizer build aborts on it.


@case("coap confirmable put empty token", only="vigil")
def coap_con_empty_token(ctx):
    raw = Coap(ctx)
    r = raw.request(CON, PUT, 0x0201, "ps/lab/empty-token", b"", payload=b"1")
    check(r is not None, "no response to a CON PUT without a token")
    check_equal((r.type, r.code_text, r.mid, r.token), (ACK, "2.04", 0x0201, b""),
                "piggybacked 2.04")
    ctx.broker.check_alive()


@case("coap observe empty token", only="vigil")
def coap_observe_empty_token(ctx):
    raw = Coap(ctx)
    r = raw.request(CON, GET, 0x0301, "ps/lab/observe-empty", b"", [(OBSERVE, b"")])
    check(r is not None, "no response to GET Observe 0 without a token")
    check_equal((r.type, r.code_text, r.token), (ACK, "2.05", b""), "registration response")
    check(r.opt(OBSERVE) is not None, "registration response has no Observe option")
    ctx.broker.check_alive()


# -- wills ----------------------------------------------------------------------
#
# A will reports a device that went away without DISCONNECT. vigil sends
# the will of an MQTT connection that ends without a normal DISCONNECT
# (docs/architecture.md). A DTLS session that ends without an MQTT-SN
# DISCONNECT (close_notify, a fatal alert, a new handshake from the same
# address) ends the MQTT-SN connection the same way.


@case("mqtt-sn will after dtls close", only="vigil")
def sn_will_after_dtls_close(ctx):
    dev = f"will-dev-{ctx.number}"
    key = ctx.broker.add_psk_device(dev)
    will_topic = f"site/icu3/room1/{dev}/status"
    watcher = Watcher(ctx, will_topic, "will-watch")
    relay = Relay(ctx, dev, key)
    c = sn.Client("127.0.0.1", relay.port, dev, log=ctx.log)
    ctx.defer(c.close)
    check_equal(c.connect(60, will=(will_topic, b"offline", 1, False)), sn.ACCEPTED, "CONNACK")
    relay.close()
    got = watcher.wait(1, timeout=5.0)
    check_equal(got, [(will_topic.encode(), b"offline")],
                "will after the DTLS session ended without DISCONNECT")


# -- identities -------------------------------------------------------------------
#
# vigil's rule for MQTT: the client id is the device id or
# "<device id>:<suffix>", and an anonymous client may not use a client id
# that names a provisioned device. MQTT-SN ClientIds appear in every event
# and in the engine's view of who did what, so the same rule applies.


@case("mqtt-sn client id names dtls device", only="vigil")
def sn_client_id_other_device(ctx):
    dev = f"cid-dev-{ctx.number}"
    key = ctx.broker.add_psk_device(dev)
    ctx.broker.add_psk_device(f"cid-other-{ctx.number}")
    relay = Relay(ctx, dev, key)
    c = sn.Client("127.0.0.1", relay.port, f"cid-other-{ctx.number}", log=ctx.log)
    ctx.defer(c.close)
    code = c.connect(60)
    check_equal(code, sn.NOT_SUPPORTED,
                f"CONNACK for device {dev} using the ClientId of another device")


@case("anonymous mqtt-sn device client id", only="vigil")
def sn_anonymous_device_client_id(ctx):
    dev = f"anon-dev-{ctx.number}"
    ctx.broker.add_psk_device(dev)
    with sn.Client("127.0.0.1", ctx.broker.sn_port, dev, log=ctx.log) as c:
        check_equal(c.connect(60), sn.NOT_SUPPORTED,
                    "CONNACK for an anonymous client using a provisioned device id")


# -- revocation --------------------------------------------------------------------
#
# `vigil device revoke ID` is how an operator cuts a device off, and the
# README states that live connections close within about a second. A
# device that authenticated with its PSK must lose its sessions too.


@case("revoke ends coap psk session", only="vigil")
def revoke_coap_psk(ctx):
    dev = f"rev-coap-{ctx.number}"
    key = ctx.broker.add_psk_device(dev)
    cmd = ["/usr/bin/coap-client-openssl", "-B", "30", "-s", "20", "-k", key, "-u", dev,
           "-m", "get", f"coaps://127.0.0.1:{ctx.broker.coaps_port}/t/heart_rate"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ctx.defer(lambda: (proc.kill(), proc.communicate()))
    wait_event(ctx, lambda e: e.get("type") == "auth_success" and e.get("device") == dev
               and e.get("proto") == "coap", f"CoAP login of {dev}")
    ctx.broker.revoke_device(dev)
    wait_event(ctx, lambda e: e.get("type") == "disconnect" and e.get("device") == dev
               and e.get("proto") == "coap", f"end of the CoAP session of revoked {dev}",
               timeout=5.0)


@case("revoke ends mqtt-sn psk session", only="vigil")
def revoke_sn_psk(ctx):
    dev = f"rev-sn-{ctx.number}"
    key = ctx.broker.add_psk_device(dev)
    relay = Relay(ctx, dev, key)
    c = sn.Client("127.0.0.1", relay.port, dev, log=ctx.log)
    ctx.defer(c.close)
    check_equal(c.connect(60), sn.ACCEPTED, "CONNACK")
    ctx.broker.revoke_device(dev)
    deadline = time.monotonic() + 5.0
    while relay.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    check(not relay.alive(), f"DTLS session of revoked {dev} still open 5 s after revoke")


# -- events of rejected requests ------------------------------------------------------
#
# Every rejected option must leave a malformed event, so that the security
# engine sees malformed bursts. SZX 7 is reserved (RFC 7959 section 2.2);
# a Uri-Path segment with U+0000 cannot name a topic.


def expect_malformed(ctx, raw, what):
    wait_event(ctx, lambda e: e.get("type") == "malformed" and e.get("peer") == raw.peer,
               f"malformed event for {what} from {raw.peer}", timeout=3.0)


@case("block1 szx 7 leaves event", only="vigil")
def block1_szx7_event(ctx):
    raw = Coap(ctx)
    r = raw.request(CON, PUT, 0x0401, "ps/lab/szx7", b"b", [(BLOCK1, uint_opt(0x0F))], b"x")
    check(r is not None and r.code_text == "4.00", f"Block1 SZX 7 got {r}")
    expect_malformed(ctx, raw, "Block1 with SZX 7")


@case("uri-path nul leaves event", only="vigil")
def uri_path_nul_event(ctx):
    raw = Coap(ctx)
    r = raw.request(CON, GET, 0x0501, None, b"n", [(URI_PATH, b"ps"), (URI_PATH, b"a\x00b")])
    check(r is not None and r.code_text == "4.00", f"Uri-Path with U+0000 got {r}")
    expect_malformed(ctx, raw, "a Uri-Path segment with U+0000")


@case("rejected observe no unsubscribe", only="vigil")
def rejected_observe_no_unsubscribe(ctx):
    raw = Coap(ctx)
    r = raw.request(CON, GET, 0x0601, "ps/lab/a#", b"o", [(OBSERVE, b"")])
    check(r is not None and r.code_text == "4.00", f"Observe of an invalid filter got {r}")
    time.sleep(QUIET_S)
    extra = new_events(ctx, lambda e: e.get("peer") == raw.peer and e.get("type") == "unsubscribe")
    check_equal(extra, [], "unsubscribe events for a subscription that never existed")


# -- conditional requests ----------------------------------------------------------------
#
# If-Match is a critical option this server processes. When its condition
# fails, the server must not perform the method and must respond with 4.12
# (RFC 7252 section 5.10.8), for DELETE as for PUT.


@case("delete honours if-match", only="vigil")
def delete_if_match(ctx):
    raw = Coap(ctx)
    r = raw.request(CON, PUT, 0x0801, "ps/lab/conditional", b"a", payload=b"v1")
    check(r is not None and r.code_text == "2.04", f"PUT got {r}")
    r = raw.request(CON, DELETE, 0x0802, "ps/lab/conditional", b"d",
                    [(IF_MATCH, b"\x00\x00\x00\x00")])
    check(r is not None, "no response to DELETE with If-Match")
    check_equal(r.code_text, "4.12", "DELETE whose If-Match names another ETag")
    r = raw.request(CON, GET, 0x0803, "ps/lab/conditional", b"g")
    check(r is not None, "no response to GET")
    check_equal((r.code_text, r.payload), ("2.05", b"v1"), "retained message after the DELETE")


# -- content negotiation ---------------------------------------------------------------


@case("accept 112 fractional pack", only="vigil")
def accept_cbor_fractional(ctx):
    raw = Coap(ctx)
    pack = ("[" + ",".join('{"v":1.1}' for _ in range(30)) + "]").encode()
    r = raw.request(CON, PUT, 0x0701, "ps/lab/pack", b"p", payload=pack)
    check(r is not None and r.code_text == "2.04", f"PUT of the pack got {r}")
    r = raw.request(CON, GET, 0x0702, "ps/lab/pack", b"q", [(ACCEPT, uint_opt(SENML_CBOR))])
    check(r is not None, "no response to GET with Accept 112")
    check_equal(r.code_text, "2.05", "GET of a SenML JSON pack with Accept 112")
    check_equal(r.uint(CONTENT_FORMAT), SENML_CBOR, "Content-Format")


# -- the peer table ----------------------------------------------------------------------
#
# gateway.max_peers bounds the state of a listener. Peers that went away
# must leave it in bounded time, or a few clients that register and leave
# lock every other client out for good. 20 peers fill this vigil's table.


def poll_until(ctx, attempt, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if attempt():
            return True
        time.sleep(5)
    return False


@case("gone coap observers release peers", only="vigil", needs="small")
def gone_observers(ctx):
    for i in range(20):
        raw = Coap(ctx)
        r = raw.request(CON, GET, 1, f"ps/quiet/t{i}", b"o", [(OBSERVE, b"")])
        check(r is not None and r.code_text == "2.05", f"observer {i}: {r}")
        raw.sock.close()

    def attempt():
        probe = Coap(ctx)
        r = probe.request(CON, GET, 2, ".well-known/core", b"w", wait=1.0)
        probe.sock.close()
        return r is not None

    # coap_idle is 10 s here. A confirmable check of a gone observer ends
    # after at most about 93 s of retransmissions (RFC 7252 section 4.8.2).
    check(poll_until(ctx, attempt, 130),
          "a new CoAP client still gets no response 130 s after 20 observers went away")


@case("duration 0 mqtt-sn releases peers", only="vigil", needs="small")
def duration_zero_clients(ctx):
    for i in range(20):
        c = sn.Client("127.0.0.1", ctx.broker.sn_port, f"pin{i}", log=ctx.log)
        code = c.connect(0)
        c.close()
        if code != sn.ACCEPTED:
            return  # a gateway that rejects Duration 0 keeps no state for it

    def attempt():
        c = sn.Client("127.0.0.1", ctx.broker.sn_port, "late", timeout=1.0, log=ctx.log)
        try:
            return c.connect(60) == sn.ACCEPTED
        except sn.SnError:
            return False
        finally:
            c.close()

    # limits.max_keep_alive is 10 s here, as for MQTT connections.
    check(poll_until(ctx, attempt, 100),
          "a new MQTT-SN client still gets no CONNACK 100 s after 20 clients with Duration 0 left")


if __name__ == "__main__":
    sys.exit(harness.run("break-udp", Fixture))
