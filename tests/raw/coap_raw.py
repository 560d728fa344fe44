#!/usr/bin/python3
"""Raw-datagram tests of vigil's CoAP front end.

Each case sends hand-built CoAP datagrams from its own UDP socket to the
anonymous plaintext listener. It checks the exact reply (a Reset with the
same message ID, a piggybacked response with its code, message ID and
token), or that nothing comes back within 0.5 s, and the event in
events.jsonl: a "malformed" event with the rule ("RFC7252-<section>") the
datagram breaks. The Observe cases drive notifications by publishing with
paho on the MQTT listener. After every case a witness GET of
/.well-known/core must still get 2.05. Every case is vigil-only.

Usage: /usr/bin/python3 tests/raw/coap_raw.py [NAME-SUBSTRING...]
"""

import os
import socket
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e", "coap"))

import coapbroker  # noqa: E402  (puts tests/lib on the path)
import harness  # noqa: E402
import pahoclient  # noqa: E402
from coapbroker import MAX_BODY, CoapBroker  # noqa: E402
from harness import case, check, check_equal  # noqa: E402

QUIET_S = 0.5
CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST, PUT, DELETE = 0x01, 0x02, 0x03, 0x04
OBSERVE, URI_PATH, CONTENT_FORMAT, MAX_AGE, BLOCK2, BLOCK1, SIZE1 = 6, 11, 12, 14, 23, 27, 60


def code(c, d):
    return c << 5 | d


def uint_opt(v):
    out = b""
    while v:
        out = bytes([v & 0xFF]) + out
        v >>= 8
    return out


def block_opt(num, more, szx):
    return uint_opt(num << 4 | (8 if more else 0) | szx)


def path_opts(path):
    return [(URI_PATH, seg.encode()) for seg in path.strip("/").split("/")]


def _nibble(v):
    if v < 13:
        return v, b""
    if v < 269:
        return 13, bytes([v - 13])
    return 14, struct.pack(">H", v - 269)


def encode(mtype, mcode, mid, token=b"", options=(), payload=b""):
    out = bytes([0x40 | mtype << 4 | len(token), mcode]) + struct.pack(">H", mid) + token
    last = 0
    for num, value in sorted(options, key=lambda o: o[0]):
        d, dext = _nibble(num - last)
        n, lext = _nibble(len(value))
        out += bytes([d << 4 | n]) + dext + lext + value
        last = num
    if payload:
        out += b"\xff" + payload
    return out


class Msg:
    """A decoded reply."""

    def __init__(self, data):
        self.raw = data
        self.version = data[0] >> 6
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
            d, n = data[i] >> 4, data[i] & 15
            i += 1
            if d == 13:
                d, i = 13 + data[i], i + 1
            elif d == 14:
                d, i = 269 + struct.unpack(">H", data[i:i + 2])[0], i + 2
            if n == 13:
                n, i = 13 + data[i], i + 1
            elif n == 14:
                n, i = 269 + struct.unpack(">H", data[i:i + 2])[0], i + 2
            num += d
            self.options.append((num, data[i:i + n]))
            i += n

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


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.broker = None

    def before(self, c, ctx):
        if self.broker is None or not self.broker.alive():
            self.broker = CoapBroker(self.log_dir, name="coap-raw")
            self.broker.start()
        ctx.broker = self.broker
        ctx.events_before = len(self.broker.events())

    def after(self, c, ctx):
        self.broker.check_alive()
        w = Raw(ctx)
        w.send(encode(CON, GET, 1, b"w", path_opts(".well-known/core")))
        r = w.reply()
        check_equal(r.code_text, "2.05", "witness GET /.well-known/core")

    def on_failure(self, c, ctx, exc):
        if self.broker is not None:
            ctx.log("broker stderr tail:\n" + self.broker.stderr_tail())

    def close(self):
        if self.broker is not None:
            self.broker.stop()


class Raw:
    """One UDP socket to the anonymous plaintext listener."""

    def __init__(self, ctx, v6=False):
        self.ctx = ctx
        family = socket.AF_INET6 if v6 else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        if v6:
            self.sock.connect(("::1", ctx.broker.coap_port6))
        else:
            self.sock.connect(("127.0.0.1", ctx.broker.coap_port))
        ctx.defer(self.sock.close)
        host, port = self.sock.getsockname()[:2]
        self.peer = f"[{host}]:{port}" if v6 else f"{host}:{port}"

    def send(self, data):
        self.ctx.log("send", data.hex())
        self.sock.send(data)

    def replies(self, wait=QUIET_S):
        out = []
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return out
            self.ctx.log("recv", data.hex())
            out.append(Msg(data))

    def reply(self, wait=3.0):
        """The next datagram; fails when none comes within wait s."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"no reply within {wait} s") from None
        m = Msg(data)
        self.ctx.log("recv", data.hex(), repr(m))
        return m

    def nothing(self, wait=QUIET_S):
        got = self.replies(wait)
        check(not got, f"expected no reply, got {got}")

    def request(self, mtype, mcode, mid, path, token=b"", options=(), payload=b""):
        self.send(encode(mtype, mcode, mid, token, list(path_opts(path)) + list(options), payload))
        return self.reply()


def expect_rst(raw, mid):
    r = raw.reply()
    check_equal((r.type, r.code, r.mid, r.token), (RST, 0, mid, b""), "Reset with the same MID")
    check_equal(len(r.raw), 4, "Reset length")


def malformed_event(ctx, raw, rule, count=1):
    def match(evs):
        found = [e for e in evs[ctx.events_before:] if e.get("type") == "malformed"
                 and e.get("peer") == raw.peer and e.get("rule") == rule]
        return len(found) >= count
    evs = ctx.broker.wait_events(match)
    if evs is None:
        ctx.log("events:", ctx.broker.events()[ctx.events_before:])
        raise AssertionError(f"no {count} malformed event(s) with rule {rule} for {raw.peer}")
    found = [e for e in evs[ctx.events_before:] if e.get("type") == "malformed"
             and e.get("peer") == raw.peer]
    check_equal(len([e for e in found if e.get("rule") == rule]), count, f"{rule} events")
    check(all(e.get("proto") == "coap" for e in found), "malformed events have proto coap")
    return found


def no_malformed_event(ctx, raw):
    time.sleep(0.3)
    found = [e for e in ctx.broker.events()[ctx.events_before:]
             if e.get("type") == "malformed" and e.get("peer") == raw.peer]
    check(not found, f"unexpected malformed events {found}")


def events_of(ctx, raw, ev_type):
    return [e for e in ctx.broker.events()[ctx.events_before:]
            if e.get("type") == ev_type and e.get("peer") == raw.peer]


# -- message format (RFC 7252 section 3) -----------------------------------


@case("version 2 ignored")
def bad_version(ctx):
    raw = Raw(ctx)
    raw.send(bytes([0x80, GET, 0x12, 0x34]) + bytes([0xB1]) + b"t")
    raw.nothing()
    malformed_event(ctx, raw, "RFC7252-3")


@case("token length 9 to 15 reset")
def token_length(ctx):
    raw = Raw(ctx)
    for tkl in range(9, 16):
        raw.send(bytes([0x40 | tkl, GET, 0x20, tkl]) + bytes(tkl))
        expect_rst(raw, 0x2000 + tkl)
    malformed_event(ctx, raw, "RFC7252-3", count=7)


@case("option delta nibble 15 reset")
def delta_15(ctx):
    raw = Raw(ctx)
    raw.send(bytes([0x40, GET, 0x00, 0x31, 0xF1, 0x00]))
    expect_rst(raw, 0x31)
    malformed_event(ctx, raw, "RFC7252-3.1")


@case("option length nibble 15 reset")
def length_15(ctx):
    raw = Raw(ctx)
    raw.send(bytes([0x40, GET, 0x00, 0x32, 0xBF]) + b"x" * 20)
    expect_rst(raw, 0x32)
    malformed_event(ctx, raw, "RFC7252-3.1")


@case("truncated option value reset")
def truncated_value(ctx):
    raw = Raw(ctx)
    raw.send(bytes([0x40, GET, 0x00, 0x33, 0xB5]) + b"ab")
    expect_rst(raw, 0x33)
    raw.send(bytes([0x40, GET, 0x00, 0x34, 0xD1]))  # delta 13 without its extension byte
    expect_rst(raw, 0x34)
    malformed_event(ctx, raw, "RFC7252-3.1", count=2)


@case("payload marker without payload reset")
def empty_payload(ctx):
    raw = Raw(ctx)
    raw.send(encode(CON, GET, 0x35, b"", path_opts("ps/raw/x")) + b"\xff")
    expect_rst(raw, 0x35)
    malformed_event(ctx, raw, "RFC7252-3")


@case("malformed non silent")
def malformed_non(ctx):
    raw = Raw(ctx)
    raw.send(bytes([0x50 | 9, GET, 0x00, 0x36]) + bytes(9))
    raw.send(bytes([0x50, GET, 0x00, 0x37, 0xF1, 0x00]))
    raw.nothing()
    malformed_event(ctx, raw, "RFC7252-3")
    malformed_event(ctx, raw, "RFC7252-3.1")


# -- options (RFC 7252 section 5.4) -----------------------------------------


@case("unknown critical option con 4.02")
def critical_con(ctx):
    raw = Raw(ctx)
    r = raw.request(CON, GET, 0x40, "ps/raw/crit", b"\x0a\x0b", [(9, b"x")])
    check_equal((r.type, r.code_text, r.mid, r.token), (ACK, "4.02", 0x40, b"\x0a\x0b"),
                "piggybacked 4.02")
    evs = malformed_event(ctx, raw, "RFC7252-5.4.1")
    check("9" in evs[0].get("detail", ""), f"detail names the option: {evs[0]}")


@case("unknown critical option non silent")
def critical_non(ctx):
    raw = Raw(ctx)
    raw.send(encode(NON, GET, 0x41, b"\x01", path_opts("ps/raw/crit") + [(2049, b"")]))
    raw.nothing()
    malformed_event(ctx, raw, "RFC7252-5.4.1")


@case("critical option bad length 4.02")
def critical_length(ctx):
    raw = Raw(ctx)
    # Accept (17) is recognized, but a 3-byte value is out of its range.
    r = raw.request(CON, GET, 0x42, "ps/raw/crit", b"\x01", [(17, b"\x00\x00\x00")])
    check_equal((r.code_text, r.mid), ("4.02", 0x42), "4.02 for an out-of-range length")
    malformed_event(ctx, raw, "RFC7252-5.4.1")


@case("unknown elective option ignored")
def elective(ctx):
    raw = Raw(ctx)
    r = raw.request(CON, GET, 0x43, "ps/raw/never", b"\x01", [(10, b"x"), (2048, b"yy")])
    check_equal((r.type, r.code_text, r.mid), (ACK, "4.04", 0x43), "normal response")
    no_malformed_event(ctx, raw)


@case("proxy uri 5.05")
def proxy(ctx):
    raw = Raw(ctx)
    r = raw.request(CON, GET, 0x44, "", b"\x01", [(35, b"coap://example.invalid/x")])
    check_equal(r.code_text, "5.05", "Proxying Not Supported")


@case("uri path segment with slash 4.00")
def path_slash(ctx):
    raw = Raw(ctx)
    raw.send(encode(CON, GET, 0x45, b"\x01", [(URI_PATH, b"ps"), (URI_PATH, b"a/b")]))
    check_equal(raw.reply().code_text, "4.00", "Uri-Path with '/'")


# -- message types and codes (RFC 7252 sections 4 and 12.1) -----------------


@case("ack carrying request silent")
def ack_request(ctx):
    raw = Raw(ctx)
    raw.send(encode(ACK, GET, 0x50, b"", path_opts("ps/raw/x")))
    raw.nothing()
    malformed_event(ctx, raw, "RFC7252-4.2")


@case("reset with code silent")
def rst_code(ctx):
    raw = Raw(ctx)
    raw.send(encode(RST, code(2, 5), 0x51))
    raw.nothing()
    malformed_event(ctx, raw, "RFC7252-4.2")


@case("reset with token silent")
def rst_token(ctx):
    raw = Raw(ctx)
    raw.send(bytes([0x71, 0x00, 0x00, 0x52, 0xAA]))
    raw.nothing()
    malformed_event(ctx, raw, "RFC7252-4.1")


@case("reserved code class reset")
def reserved_class(ctx):
    raw = Raw(ctx)
    raw.send(encode(CON, code(7, 1), 0x53, b"\x01"))
    expect_rst(raw, 0x53)
    raw.send(encode(NON, code(1, 0), 0x54, b"\x01"))
    raw.nothing()
    malformed_event(ctx, raw, "RFC7252-12.1", count=2)


@case("response in con reset")
def response_con(ctx):
    raw = Raw(ctx)
    raw.send(encode(CON, code(2, 5), 0x55, b"\x01", payload=b"x"))
    expect_rst(raw, 0x55)
    malformed_event(ctx, raw, "RFC7252-5.3.2")


@case("unknown method 4.05")
def unknown_method(ctx):
    raw = Raw(ctx)
    r = raw.request(CON, code(0, 9), 0x56, "ps/raw/x", b"\x01")
    check_equal((r.type, r.code_text, r.mid), (ACK, "4.05", 0x56), "Method Not Allowed")
    r = raw.request(CON, code(0, 5), 0x57, "ps/raw/x", b"\x02")  # FETCH
    check_equal(r.code_text, "4.05", "FETCH")
    time.sleep(0.3)
    check_equal(events_of(ctx, raw, "publish"), [], "publish events")


@case("empty con ping reset")
def ping(ctx):
    raw = Raw(ctx)
    raw.send(bytes([0x40, 0x00, 0x00, 0x58]))
    expect_rst(raw, 0x58)
    no_malformed_event(ctx, raw)


@case("empty non silent")
def empty_non(ctx):
    raw = Raw(ctx)
    raw.send(bytes([0x50, 0x00, 0x00, 0x59]))
    raw.nothing()
    malformed_event(ctx, raw, "RFC7252-4.3")


@case("tokens 0 and 8 bytes echoed")
def tokens(ctx):
    raw = Raw(ctx)
    r = raw.request(CON, GET, 0x60, ".well-known/core")
    check_equal((r.code_text, r.token), ("2.05", b""), "empty token")
    r = raw.request(CON, GET, 0x61, ".well-known/core", b"12345678")
    check_equal((r.code_text, r.token), ("2.05", b"12345678"), "8-byte token")
    raw.send(encode(NON, GET, 0x62, b"abc", path_opts(".well-known/core")))
    r = raw.reply()
    check_equal((r.type, r.code_text, r.token), (NON, "2.05", b"abc"), "NON response")
    check_equal(r.uint(CONTENT_FORMAT), 40, "link-format Content-Format")


# -- deduplication (RFC 7252 section 4.5) -----------------------------------


@case("duplicate con replays response")
def duplicate_con(ctx):
    raw = Raw(ctx)
    datagram = encode(CON, PUT, 0x70, b"\x07", path_opts("ps/raw/dup"), b"once")
    raw.send(datagram)
    first = raw.reply()
    check_equal((first.code_text, first.mid), ("2.04", 0x70), "first response")
    raw.send(datagram)
    second = raw.reply()
    check_equal(second.raw, first.raw, "replayed response bytes")
    time.sleep(0.3)
    check_equal(len(events_of(ctx, raw, "publish")), 1, "publish events")


@case("duplicate non ignored")
def duplicate_non(ctx):
    raw = Raw(ctx)
    datagram = encode(NON, PUT, 0x71, b"\x08", path_opts("ps/raw/dupn"), b"once")
    raw.send(datagram)
    check_equal(raw.reply().code_text, "2.04", "first response")
    raw.send(datagram)
    raw.nothing()
    check_equal(len(events_of(ctx, raw, "publish")), 1, "publish events")


# -- block-wise (RFC 7959) ------------------------------------------------------


@case("block1 out of sequence 4.08")
def block1_sequence(ctx):
    raw = Raw(ctx)
    r = raw.request(CON, PUT, 0x80, "ps/raw/b1", b"\x01", [(BLOCK1, block_opt(1, True, 0))],
                    b"x" * 16)
    check_equal(r.code_text, "4.08", "block 1 without block 0")
    r = raw.request(CON, PUT, 0x81, "ps/raw/b1", b"\x01", [(BLOCK1, block_opt(0, True, 0))],
                    b"a" * 16)
    check_equal(r.code_text, "2.31", "Continue after block 0")
    check_equal(r.opt(BLOCK1), block_opt(0, True, 0), "Block1 echoed")
    r = raw.request(CON, PUT, 0x82, "ps/raw/b1", b"\x01", [(BLOCK1, block_opt(2, False, 0))],
                    b"c" * 5)
    check_equal(r.code_text, "4.08", "block 2 after block 0")


@case("block1 sequence completes")
def block1_complete(ctx):
    raw = Raw(ctx)
    for num, chunk in enumerate([b"a" * 32, b"b" * 32]):
        r = raw.request(CON, PUT, 0x90 + num, "ps/raw/b1ok", b"\x02",
                        [(BLOCK1, block_opt(num, True, 1))], chunk)
        check_equal(r.code_text, "2.31", f"Continue after block {num}")
    r = raw.request(CON, PUT, 0x92, "ps/raw/b1ok", b"\x02", [(BLOCK1, block_opt(2, False, 1))],
                    b"end")
    check_equal(r.code_text, "2.04", "Changed after the last block")
    check_equal(r.opt(BLOCK1), block_opt(2, False, 1), "Block1 of the last block")
    r = raw.request(CON, GET, 0x93, "ps/raw/b1ok", b"\x03")
    check_equal(r.payload, b"a" * 32 + b"b" * 32 + b"end", "reassembled body")


@case("block1 size1 too large 4.13")
def block1_too_large(ctx):
    raw = Raw(ctx)
    r = raw.request(CON, PUT, 0xA0, "ps/raw/b1big", b"\x01",
                    [(BLOCK1, block_opt(0, True, 6)), (SIZE1, uint_opt(MAX_BODY + 1))],
                    b"x" * 1024)
    check_equal(r.code_text, "4.13", "Request Entity Too Large")
    check_equal(r.uint(SIZE1), MAX_BODY, "Size1 names the maximum")


@case("body over maximum 4.13")
def body_too_large(ctx):
    raw = Raw(ctx)
    r = raw.request(CON, PUT, 0xA1, "ps/raw/big", b"\x01", [], b"y" * (MAX_BODY + 1))
    check_equal(r.code_text, "4.13", "Request Entity Too Large")
    check_equal(r.uint(SIZE1), MAX_BODY, "Size1 names the maximum")


@case("block2 slices and past end 4.02")
def block2(ctx):
    raw = Raw(ctx)
    body = bytes(i % 251 for i in range(1500))
    raw.send(encode(CON, PUT, 0xB0, b"\x01", path_opts("ps/raw/b2"), b""))
    raw.reply()
    pub = pahoclient.Client(ctx, ctx.broker.port, "coap-raw-pub0", version=pahoclient.V311)
    pub.connect()
    pub.publish("raw/b2", body, qos=1, retain=True)
    r = raw.request(CON, GET, 0xB1, "ps/raw/b2", b"\x02")
    check_equal((r.code_text, r.opt(BLOCK2)), ("2.05", block_opt(0, True, 6)), "first block")
    check_equal(r.uint(28), 1500, "Size2")
    check_equal(r.payload, body[:1024], "first block payload")
    etag = r.opt(4)
    check(etag is not None and len(etag) == 4, f"ETag {etag}")
    r = raw.request(CON, GET, 0xB2, "ps/raw/b2", b"\x03", [(BLOCK2, block_opt(1, False, 6))])
    check_equal((r.opt(BLOCK2), r.payload), (block_opt(1, False, 6), body[1024:]), "last block")
    check_equal(r.opt(4), etag, "same ETag")
    r = raw.request(CON, GET, 0xB3, "ps/raw/b2", b"\x04", [(BLOCK2, block_opt(3, False, 0))])
    check_equal((r.opt(BLOCK2), r.payload), (block_opt(3, True, 0), body[48:64]), "16-byte block")
    r = raw.request(CON, GET, 0xB4, "ps/raw/b2", b"\x05", [(BLOCK2, block_opt(2, False, 6))])
    check_equal(r.code_text, "4.02", "block past the end")


# -- representations ---------------------------------------------------------------


@case("accept senml cbor and 4.06")
def accept(ctx):
    raw = Raw(ctx)
    senml = b'[{"bn":"d1/","bt":1700000000,"n":"spo2","u":"/","v":0.97}]'
    r = raw.request(CON, PUT, 0xD0, "ps/raw/senml", b"\x01", [(CONTENT_FORMAT, uint_opt(110))],
                    senml)
    check_equal(r.code_text, "2.04", "PUT")
    r = raw.request(CON, GET, 0xD1, "ps/raw/senml", b"\x02")
    check_equal((r.uint(CONTENT_FORMAT), r.payload), (110, senml), "SenML JSON as stored")
    r = raw.request(CON, GET, 0xD2, "ps/raw/senml", b"\x03", [(17, uint_opt(112))])
    check_equal((r.code_text, r.uint(CONTENT_FORMAT)), ("2.05", 112), "Accept 112")
    # [{-2: "d1/", -3: 1700000000, 0: "spo2", 1: "/", 2: 0.97}]
    want = (bytes([0x81, 0xA5, 0x21, 0x63]) + b"d1/" + bytes([0x22, 0x1A, 0x65, 0x53, 0xF1, 0x00,
                                                              0x00, 0x64]) + b"spo2" +
            bytes([0x01, 0x61]) + b"/" + bytes([0x02, 0xFB]) + struct.pack(">d", 0.97))
    check_equal(r.payload, want, "SenML CBOR")
    r = raw.request(CON, GET, 0xD3, "ps/raw/senml", b"\x04", [(17, uint_opt(50))])
    check_equal(r.code_text, "4.06", "Accept application/json")


@case("etag valid and preconditions")
def etag(ctx):
    raw = Raw(ctx)
    raw.request(CON, PUT, 0xD8, "ps/raw/etag", b"\x01", [], b"v1")
    r = raw.request(CON, GET, 0xD9, "ps/raw/etag", b"\x02")
    tag = r.opt(4)
    check(tag is not None and len(tag) == 4, f"ETag {tag}")
    r = raw.request(CON, GET, 0xDA, "ps/raw/etag", b"\x03", [(4, tag)])
    check_equal((r.code_text, r.payload, r.opt(4)), ("2.03", b"", tag), "2.03 Valid")
    r = raw.request(CON, PUT, 0xDB, "ps/raw/etag", b"\x04", [(5, b"")], b"v2")
    check_equal(r.code_text, "4.12", "If-None-Match on an existing topic")
    r = raw.request(CON, PUT, 0xDC, "ps/raw/etag", b"\x05", [(1, b"nope")], b"v2")
    check_equal(r.code_text, "4.12", "If-Match with another ETag")
    r = raw.request(CON, PUT, 0xDD, "ps/raw/etag", b"\x06", [(1, tag)], b"v2")
    check_equal(r.code_text, "2.04", "If-Match with the current ETag")
    r = raw.request(CON, GET, 0xDE, "ps/raw/etag", b"\x07", [(4, tag)])
    check_equal((r.code_text, r.payload), ("2.05", b"v2"), "new content after a change")


# -- Observe (RFC 7641) -----------------------------------------------------------


def publisher(ctx, name):
    pub = pahoclient.Client(ctx, ctx.broker.port, name, version=pahoclient.V311)
    pub.connect()
    return pub


def register(ctx, raw, topic, token=b"\x0b", mid=0xC0):
    r = raw.request(CON, GET, mid, "ps/" + topic, token, [(OBSERVE, b"")])
    check_equal((r.type, r.code_text, r.token), (ACK, "2.05", token), "registration response")
    check(r.opt(OBSERVE) is not None, f"Observe option in the registration response {r}")
    return r


def wait_unsubscribe(ctx, raw, topic, timeout=5.0):
    def match(evs):
        return any(e.get("type") == "unsubscribe" and e.get("peer") == raw.peer
                   and e.get("topic") == topic for e in evs[ctx.events_before:])
    if ctx.broker.wait_events(match, timeout) is None:
        raise AssertionError(f"no unsubscribe event for {topic} from {raw.peer}")


@case("observe notifications non and con")
def observe_types(ctx):
    raw = Raw(ctx)
    pub = publisher(ctx, "coap-raw-pub1")
    first = register(ctx, raw, "raw/obs1")
    pub.publish("raw/obs1", b"q0", qos=0)
    n0 = raw.reply()
    check_equal((n0.type, n0.code_text, n0.token, n0.payload), (NON, "2.05", b"\x0b", b"q0"),
                "QoS 0 notification")
    check(n0.uint(OBSERVE) > (first.uint(OBSERVE) or 0), "Observe number grows")
    check_equal(n0.uint(MAX_AGE), 60, "Max-Age")
    pub.publish("raw/obs1", b"q1", qos=1)
    n1 = raw.reply()
    check_equal((n1.type, n1.payload), (CON, b"q1"), "QoS 1 notification is confirmable")
    check(n1.uint(OBSERVE) > n0.uint(OBSERVE), "Observe number grows")
    raw.send(bytes([0x60, 0x00]) + struct.pack(">H", n1.mid))
    raw.nothing()


@case("observe nstart 1 waits for ack")
def observe_nstart(ctx):
    raw = Raw(ctx)
    pub = publisher(ctx, "coap-raw-pub2")
    register(ctx, raw, "raw/obs2/+")
    pub.publish("raw/obs2/a", b"one", qos=1)
    pub.publish("raw/obs2/b", b"two", qos=1)
    n1 = raw.reply()
    check_equal((n1.type, n1.payload), (CON, b"one"), "first confirmable notification")
    # The second waits for the acknowledgement (a retransmission of the
    # first may come meanwhile, 2 to 3 s later).
    for m in raw.replies(1.5):
        check_equal((m.mid, m.payload), (n1.mid, b"one"), "only the first is in flight")
    raw.send(bytes([0x60, 0x00]) + struct.pack(">H", n1.mid))
    n2 = raw.reply()
    check_equal((n2.type, n2.payload), (CON, b"two"), "second after the ACK")
    raw.send(bytes([0x60, 0x00]) + struct.pack(">H", n2.mid))


@case("observe every 20th confirmable")
def observe_every_20(ctx):
    raw = Raw(ctx)
    pub = publisher(ctx, "coap-raw-pub3")
    register(ctx, raw, "raw/obs3")
    types = []
    for i in range(20):
        pub.publish("raw/obs3", str(i).encode(), qos=0)
        m = raw.reply()
        check_equal(m.payload, str(i).encode(), f"notification {i}")
        types.append(m.type)
        if m.type == CON:
            raw.send(bytes([0x60, 0x00]) + struct.pack(">H", m.mid))
    check_equal(types, [NON] * 19 + [CON], "types of 20 QoS 0 notifications")


@case("observe reset deregisters")
def observe_reset(ctx):
    raw = Raw(ctx)
    pub = publisher(ctx, "coap-raw-pub4")
    register(ctx, raw, "raw/obs4")
    pub.publish("raw/obs4", b"x", qos=0)
    n = raw.reply()
    raw.send(bytes([0x70, 0x00]) + struct.pack(">H", n.mid))
    wait_unsubscribe(ctx, raw, "raw/obs4")
    pub.publish("raw/obs4", b"y", qos=0)
    raw.nothing()


@case("observe 1 deregisters")
def observe_deregister(ctx):
    raw = Raw(ctx)
    pub = publisher(ctx, "coap-raw-pub5")
    pub.publish("raw/obs5", b"state", qos=1, retain=True)
    r = register(ctx, raw, "raw/obs5", token=b"\x05")
    check_equal(r.payload, b"state", "registration response carries the retained message")
    r = raw.request(CON, GET, 0xC1, "ps/raw/obs5", b"\x05", [(OBSERVE, b"\x01")])
    check_equal((r.code_text, r.payload, r.opt(OBSERVE)), ("2.05", b"state", None),
                "plain response to the deregistration")
    wait_unsubscribe(ctx, raw, "raw/obs5")
    pub.publish("raw/obs5", b"later", qos=0)
    raw.nothing()


@case("unanswered con notification ends observation")
def observe_timeout(ctx):
    raw = Raw(ctx)
    pub = publisher(ctx, "coap-raw-pub6")
    register(ctx, raw, "raw/obs6")
    pub.publish("raw/obs6", b"ack me", qos=1)
    first = raw.reply()
    start = time.monotonic()
    check_equal(first.type, CON, "confirmable notification")
    arrivals = []
    # ACK_TIMEOUT 2 s, ACK_RANDOM_FACTOR 1.5, MAX_RETRANSMIT 4: retransmissions
    # after T, 3T, 7T and 15T with T in [2, 3) s, then the end at 31T.
    while len(arrivals) < 4:
        m = raw.reply(wait=30)
        check_equal((m.mid, m.raw), (first.mid, first.raw), "retransmission of the same bytes")
        arrivals.append(time.monotonic() - start)
    ctx.log("retransmissions after", [round(a, 2) for a in arrivals])
    t = arrivals[0]
    check(1.9 <= t <= 3.2, f"first retransmission after {t:.2f} s")
    for k, mult in enumerate((3, 7, 15)):
        check(abs(arrivals[k + 1] - mult * t) <= 0.2 * mult + 0.5,
              f"retransmission {k + 2} after {arrivals[k + 1]:.2f} s, expected {mult} x {t:.2f}")
    wait_unsubscribe(ctx, raw, "raw/obs6", timeout=31 * t - arrivals[3] + 3)
    pub.publish("raw/obs6", b"gone", qos=0)
    raw.nothing()


# -- robustness --------------------------------------------------------------------


@case("mutated datagrams keep server running")
def mutated(ctx):
    import random
    rng = random.Random(7252)
    seeds = [
        encode(CON, GET, 1, b"\x01", path_opts(".well-known/core")),
        encode(CON, PUT, 2, b"\x02", path_opts("ps/raw/fuzz") + [(BLOCK1, block_opt(0, True, 0))],
               b"x" * 16),
        encode(CON, GET, 3, b"\x03", path_opts("ps/raw/fuzz/+") + [(OBSERVE, b"")]),
        encode(NON, POST, 4, b"\x04", path_opts("t") + [(CONTENT_FORMAT, uint_opt(112))],
               bytes([0x81, 0xA2, 0x00, 0x61, 0x61, 0x02, 0x01])),
        encode(CON, GET, 5, b"\x05", path_opts("ps/raw/b2") + [(BLOCK2, block_opt(1, False, 2))]),
        bytes([0x60, 0x00, 0x00, 0x07]),
        bytes([0x70, 0x00, 0x00, 0x08]),
    ]
    socks = [Raw(ctx) for _ in range(4)]
    for i in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randint(0, 2)
            if op == 0 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 1:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
            elif data:
                del data[rng.randrange(len(data))]
        socks[i % 4].sock.send(bytes(data))
        if i % 200 == 199:
            for s in socks:
                s.replies(0.05)
    ctx.broker.check_alive()


# -- IPv6 ---------------------------------------------------------------------------


@case("ipv6 malformed and request")
def ipv6(ctx):
    raw = Raw(ctx, v6=True)
    raw.send(bytes([0x80, GET, 0x12, 0x34]))
    raw.nothing()
    malformed_event(ctx, raw, "RFC7252-3")
    raw2 = Raw(ctx, v6=True)
    raw2.send(bytes([0x49, GET, 0x00, 0x77]) + bytes(9))
    expect_rst(raw2, 0x77)
    r = raw2.request(CON, GET, 0x78, ".well-known/core", b"\x01")
    check_equal(r.code_text, "2.05", "GET over IPv6")
    check(raw2.peer.startswith("[::1]:"), raw2.peer)


if __name__ == "__main__":
    sys.exit(harness.run("coap-raw", Fixture))
