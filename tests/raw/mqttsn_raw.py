#!/usr/bin/python3
"""Raw-datagram tests of vigil's MQTT-SN gateway.

Each case sends hand-built datagrams from a new UDP socket (connected with
CONNECT first where the case needs it) and checks the exact reply, or that
nothing comes back within 0.5 s, and the event in events.jsonl: a
"malformed" event with the rule "MQTT-SN-1.2:<section>" of the 1.2
specification that the datagram breaks. After every case a witness client
must still get GWINFO for SEARCHGW. Every case is vigil-only.

Usage: /usr/bin/python3 tests/raw/mqttsn_raw.py [NAME-SUBSTRING...]
"""

import os
import socket
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e", "mqttsn"))

import snbroker  # noqa: E402  (puts tests/lib on the path)
import harness  # noqa: E402
import snclient as sn  # noqa: E402
from harness import case, check, check_equal  # noqa: E402
from snbroker import GATEWAY_ID, SnBroker  # noqa: E402

QUIET_S = 0.5
DISCONNECT = b"\x02\x18"


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.broker = None

    def before(self, c, ctx):
        if self.broker is None or not self.broker.alive():
            # Without ADVERTISE, every datagram the gateway sends is a reply.
            self.broker = SnBroker(self.log_dir, name="mqttsn-raw", advertise_s=0)
            self.broker.start()
        ctx.broker = self.broker
        ctx.events_before = len(self.broker.events())
        ctx.number = c.number

    def after(self, c, ctx):
        self.broker.check_alive()
        with sn.Client("127.0.0.1", self.broker.sn_port, "witness", log=ctx.log) as w:
            check_equal(w.search().gw_id, GATEWAY_ID, "witness GWINFO")

    def on_failure(self, c, ctx, exc):
        if self.broker is not None:
            ctx.log("broker stderr tail:\n" + self.broker.stderr_tail())

    def close(self):
        if self.broker is not None:
            self.broker.stop()


class Raw:
    """One UDP socket to the plaintext listener."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", ctx.broker.sn_port))
        ctx.defer(self.sock.close)
        host, port = self.sock.getsockname()
        self.peer = f"{host}:{port}"

    def send(self, data):
        self.ctx.log("send", data.hex())
        self.sock.send(data)

    def replies(self, wait=QUIET_S):
        out = []
        self.sock.settimeout(wait)
        while True:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return out
            self.ctx.log("recv", data.hex())
            out.append(data)

    def exchange(self, data, expected, wait=QUIET_S):
        """Send data; the replies must be exactly expected (a list of bytes)."""
        self.send(data)
        got = self.replies(wait)
        check_equal([g.hex() for g in got], [e.hex() for e in expected], f"replies to {data.hex()}")

    def connect(self, client_id=None):
        self.exchange(sn.connect(client_id or f"raw{self.ctx.number}", 60), [b"\x03\x05\x00"])


def expect_event(ctx, raw, rule, etype="malformed"):
    def match(e):
        return e.get("type") == etype and e.get("peer") == raw.peer and e.get("rule") == rule

    evs = ctx.broker.wait_events(lambda es: any(match(e) for e in es[ctx.events_before:]))
    if evs is None:
        got = [(e.get("type"), e.get("rule"), e.get("detail"))
               for e in ctx.broker.events()[ctx.events_before:] if e.get("peer") == raw.peer]
        raise AssertionError(f"no {etype} event with rule {rule} for {raw.peer}; got {got}")
    return [e for e in evs[ctx.events_before:] if match(e)][0]


def silent_with_rule(ctx, data, rule, connect=False):
    raw = Raw(ctx)
    if connect:
        raw.connect()
    raw.exchange(data, [])
    return expect_event(ctx, raw, rule)


R_LENGTH = "MQTT-SN-1.2:5.2.1"
R_TYPE = "MQTT-SN-1.2:5.2.2"
R_FLAGS = "MQTT-SN-1.2:5.3.4"


# -- Length and MsgType ------------------------------------------------------

@case("length above datagram", only="vigil")
def t_length_above(ctx):
    silent_with_rule(ctx, b"\x03\x16", R_LENGTH)


@case("length below datagram", only="vigil")
def t_length_below(ctx):
    silent_with_rule(ctx, b"\x02\x16\x00", R_LENGTH)


@case("length zero", only="vigil")
def t_length_zero(ctx):
    silent_with_rule(ctx, b"\x00\x16", R_LENGTH)


@case("one byte datagram", only="vigil")
def t_one_byte(ctx):
    silent_with_rule(ctx, b"\x02", R_LENGTH)


@case("long length mismatch", only="vigil")
def t_long_mismatch(ctx):
    silent_with_rule(ctx, b"\x01\x00\x09\x16", R_LENGTH)


@case("long length below header", only="vigil")
def t_long_below_header(ctx):
    silent_with_rule(ctx, b"\x01\x00\x03\x16", R_LENGTH)


@case("long length truncated", only="vigil")
def t_long_truncated(ctx):
    silent_with_rule(ctx, b"\x01\x00", R_LENGTH)


@case("long length searchgw accepted", only="vigil")
def t_long_searchgw(ctx):
    Raw(ctx).exchange(b"\x01\x00\x05\x01\x00", [bytes([3, sn.GWINFO, GATEWAY_ID])])


@case("reserved message types", only="vigil")
def t_reserved_types(ctx):
    for t in (0x03, 0x11, 0x19, 0x1E, 0xFD, 0xFF):
        silent_with_rule(ctx, bytes([2, t]), R_TYPE)


# -- fields ------------------------------------------------------------------

@case("publish topic id type 0b11", only="vigil")
def t_publish_tid3(ctx):
    silent_with_rule(ctx, b"\x07\x0c\x23\x00\x01\x00\x01", R_FLAGS, connect=True)


@case("subscribe topic id type 0b11", only="vigil")
def t_subscribe_tid3(ctx):
    silent_with_rule(ctx, b"\x07\x12\x03\x00\x01\x00\x01", R_FLAGS, connect=True)


@case("publish qos -1 normal topic id", only="vigil")
def t_qos_minus_one_normal(ctx):
    silent_with_rule(ctx, b"\x08\x0c\x60\x00\x01\x00\x00x", "MQTT-SN-1.2:6.8")


@case("willtopic qos -1", only="vigil")
def t_willtopic_qos_minus_one(ctx):
    silent_with_rule(ctx, b"\x04\x07\x60a", R_FLAGS)


@case("puback reserved return code", only="vigil")
def t_puback_rc(ctx):
    silent_with_rule(ctx, b"\x07\x0d\x00\x01\x00\x01\x04", "MQTT-SN-1.2:5.3.10", connect=True)


@case("publish never registered topic id", only="vigil")
def t_publish_unregistered(ctx):
    raw = Raw(ctx)
    raw.connect()
    raw.exchange(b"\x08\x0c\x20\x12\x34\x00\x05x", [b"\x07\x0d\x12\x34\x00\x05\x02"])
    ev = expect_event(ctx, raw, "MQTT-SN-1.2:6.6")
    check("4660" in ev.get("detail", ""), f"detail names the topic id: {ev}")
    # QoS 0 gets the same rejection.
    raw.exchange(b"\x08\x0c\x00\x12\x35\x00\x00x", [b"\x07\x0d\x12\x35\x00\x00\x02"])


@case("register empty topic name", only="vigil")
def t_register_empty(ctx):
    silent_with_rule(ctx, b"\x06\x0a\x00\x00\x00\x01", "MQTT-SN-1.2:5.4.10", connect=True)


@case("register wildcard topic name", only="vigil")
def t_register_wildcard(ctx):
    raw = Raw(ctx)
    raw.connect()
    raw.exchange(b"\x09\x0a\x00\x00\x00\x02a/#", [b"\x07\x0b\x00\x00\x00\x02\x03"])
    expect_event(ctx, raw, "MQTT-SN-1.2:5.3.12")


@case("connect bad protocol id", only="vigil")
def t_connect_protocol(ctx):
    silent_with_rule(ctx, b"\x08\x04\x04\x02\x00\x3cab", "MQTT-SN-1.2:5.3.8")


@case("connect client id too long", only="vigil")
def t_connect_long_id(ctx):
    silent_with_rule(ctx, sn.connect("x" * 24), "MQTT-SN-1.2:5.4.4")


@case("connect client id 23 accepted", only="vigil")
def t_connect_id_23(ctx):
    Raw(ctx).connect("y" * 23)


@case("connect client id with nul", only="vigil")
def t_connect_nul_id(ctx):
    silent_with_rule(ctx, sn.connect(b"a\x00b"), "MQTT-SN-1.2:5.3.1")


@case("connect without client id", only="vigil")
def t_connect_no_id(ctx):
    silent_with_rule(ctx, b"\x06\x04\x04\x01\x00\x3c", "MQTT-SN-1.2:5.4.4")


@case("disconnect one byte duration", only="vigil")
def t_disconnect_one_byte(ctx):
    silent_with_rule(ctx, b"\x03\x18\x00", "MQTT-SN-1.2:5.4.21", connect=True)


@case("pingreq client id too long", only="vigil")
def t_pingreq_long(ctx):
    silent_with_rule(ctx, sn.pingreq("z" * 24), "MQTT-SN-1.2:5.4.19")


# -- truncated messages -------------------------------------------------------

TRUNCATED = [
    ("advertise", b"\x04\x00\x01\x00", "5.4.1"),
    ("searchgw", b"\x02\x01", "5.4.2"),
    ("connect", b"\x05\x04\x04\x01\x00", "5.4.4"),
    ("register", b"\x05\x0a\x00\x00\x00", "5.4.10"),
    ("regack", b"\x06\x0b\x00\x01\x00\x01", "5.4.11"),
    ("publish", b"\x06\x0c\x00\x00\x01\x00", "5.4.12"),
    ("puback", b"\x06\x0d\x00\x01\x00\x01", "5.4.13"),
    ("pubrel", b"\x03\x10\x00", "5.4.14"),
    ("subscribe", b"\x04\x12\x00\x00", "5.4.15"),
    ("unsubscribe", b"\x04\x14\x00\x00", "5.4.17"),
    ("willtopicresp", b"\x02\x1b", "5.4.24"),
]


@case("truncated messages", only="vigil")
def t_truncated(ctx):
    for name, data, section in TRUNCATED:
        ctx.log("truncated", name)
        silent_with_rule(ctx, data, f"MQTT-SN-1.2:{section}")


# -- messages out of place ----------------------------------------------------

@case("gateway-only messages from client", only="vigil")
def t_gateway_only(ctx):
    for data, section in ((b"\x03\x05\x00", "5.4.5"), (b"\x02\x06", "5.4.6"),
                          (b"\x02\x08", "5.4.8"), (b"\x08\x13\x00\x00\x01\x00\x01\x00", "5.4.16"),
                          (b"\x04\x15\x00\x01", "5.4.18"), (b"\x02\x17", "5.4.20"),
                          (b"\x03\x1b\x00", "5.4.24"), (b"\x03\x1d\x00", "5.4.25")):
        ev = silent_with_rule(ctx, data, f"MQTT-SN-1.2:{section}", connect=True)
        check("sent only by a gateway" in ev.get("detail", ""), f"detail: {ev}")


@case("gwinfo and advertise ignored", only="vigil")
def t_gwinfo_ignored(ctx):
    raw = Raw(ctx)
    raw.exchange(b"\x03\x02\x09", [])
    raw.exchange(b"\x05\x00\x09\x00\x3c", [])
    evs = [e for e in ctx.broker.events()[ctx.events_before:] if e.get("peer") == raw.peer]
    check_equal(evs, [], "events for discovery messages")


@case("publish before connect", only="vigil")
def t_publish_before_connect(ctx):
    raw = Raw(ctx)
    raw.exchange(sn.publish(1, b"x", 3, 1), [DISCONNECT])
    expect_event(ctx, raw, "MQTT-SN-1.2:6.2")


@case("subscribe before connect", only="vigil")
def t_subscribe_before_connect(ctx):
    raw = Raw(ctx)
    raw.exchange(sn.subscribe("a", 1), [DISCONNECT])
    expect_event(ctx, raw, "MQTT-SN-1.2:6.2")


@case("willtopic without request", only="vigil")
def t_willtopic_unrequested(ctx):
    silent_with_rule(ctx, sn.willtopic("a/b"), "MQTT-SN-1.2:6.2", connect=True)


@case("willmsg without request", only="vigil")
def t_willmsg_unrequested(ctx):
    silent_with_rule(ctx, sn.willmsg(b"x"), "MQTT-SN-1.2:6.2")


@case("encapsulated message", only="vigil")
def t_encapsulated(ctx):
    silent_with_rule(ctx, b"\x03\xfe\x01\x02\x16", "MQTT-SN-1.2:5.5")


@case("disconnect without connection", only="vigil")
def t_disconnect_idle(ctx):
    Raw(ctx).exchange(DISCONNECT, [DISCONNECT])


@case("exact replies of a session", only="vigil")
def t_exact_session(ctx):
    raw = Raw(ctx)
    raw.connect("exact")
    raw.exchange(b"\x0a\x0a\x00\x00\x00\x07ab/c", [b"\x07\x0b\x00\x01\x00\x07\x00"])
    raw.exchange(b"\x09\x12\x20\x00\x08ab/c", [b"\x08\x13\x20\x00\x01\x00\x08\x00"])
    publish = b"\x08\x0c\x20\x00\x01\x00\x09v"
    raw.send(publish)
    got = raw.replies()
    check_equal(sorted(g.hex() for g in got), sorted([b"\x07\x0d\x00\x01\x00\x09\x00".hex(),
                                                      b"\x08\x0c\x20\x00\x01\x00\x01v".hex()]),
                "PUBACK and the delivery")
    raw.exchange(b"\x07\x0d\x00\x01\x00\x01\x00", [])
    raw.exchange(b"\x02\x16", [b"\x02\x17"])
    raw.exchange(b"\x04\x18\x00\x05", [DISCONNECT])
    raw.exchange(b"\x07\x16exact", [b"\x02\x17"])
    raw.exchange(DISCONNECT, [DISCONNECT])


if __name__ == "__main__":
    sys.exit(harness.run("mqttsn-raw", Fixture))
