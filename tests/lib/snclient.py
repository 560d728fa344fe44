#!/usr/bin/python3
"""A small MQTT-SN 1.2 client over UDP, standard library only.

Debian packages no MQTT-SN client, so the tests use this one. It encodes
and decodes every message type of the specification (1-byte and 3-byte
Length forms), speaks to a gateway over IPv4 or IPv6, and answers the
gateway's REGISTER, PUBLISH (QoS 0 to 2) and PUBREL on its own while it
waits for a reply, so received messages collect in `Client.messages`.

For MQTT-SN over DTLS, run tests/tools/sn_dtls_client (built with the unit
tests) as a local relay and point this client at the relay's plaintext
port; Python's ssl module has no DTLS.

Command line, for trying a gateway by hand:
  snclient.py [-H HOST] [-p PORT] pub -t TOPIC -m TEXT [-q QOS] [-r]
  snclient.py [-H HOST] [-p PORT] sub -t FILTER [-q QOS] [-n COUNT]
  snclient.py [-H HOST] [-p PORT] search
TOPIC is a topic name (registered first), "@ID" for a predefined topic id
or a 2-character short topic name with -s. QoS -1 needs "@ID" or -s.
"""

import argparse
import socket
import struct
import sys
import time

ADVERTISE, SEARCHGW, GWINFO = 0x00, 0x01, 0x02
CONNECT, CONNACK = 0x04, 0x05
WILLTOPICREQ, WILLTOPIC, WILLMSGREQ, WILLMSG = 0x06, 0x07, 0x08, 0x09
REGISTER, REGACK = 0x0A, 0x0B
PUBLISH, PUBACK, PUBCOMP, PUBREC, PUBREL = 0x0C, 0x0D, 0x0E, 0x0F, 0x10
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 0x12, 0x13, 0x14, 0x15
PINGREQ, PINGRESP, DISCONNECT = 0x16, 0x17, 0x18
WILLTOPICUPD, WILLTOPICRESP, WILLMSGUPD, WILLMSGRESP = 0x1A, 0x1B, 0x1C, 0x1D
ENCAPSULATED = 0xFE

NAMES = {v: k for k, v in globals().items() if k.isupper() and isinstance(v, int)}

# TopicIdType values of the Flags byte.
NORMAL, PREDEFINED, SHORT = 0, 1, 2

# ReturnCode values.
ACCEPTED, CONGESTION, INVALID_TOPIC_ID, NOT_SUPPORTED = 0, 1, 2, 3

DUP, RETAIN, WILL, CLEAN = 0x80, 0x10, 0x08, 0x04


class SnError(Exception):
    """A reply did not come, or was not the one expected."""


def flags(qos=0, retain=False, will=False, clean=False, dup=False, topic_type=NORMAL):
    q = 3 if qos == -1 else qos
    return ((DUP if dup else 0) | q << 5 | (RETAIN if retain else 0) | (WILL if will else 0)
            | (CLEAN if clean else 0) | topic_type)


def frame(msg_type, body=b"", long_form=False):
    """Return one message: Length, MsgType and body; 3-byte Length when needed."""
    n = len(body) + 2
    if n > 255 or long_form:
        return b"\x01" + struct.pack(">H", n + 2) + bytes([msg_type]) + body
    return bytes([n, msg_type]) + body


def text(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def short_id(name):
    """The topic id field of a 2-character short topic name."""
    raw = text(name)
    if len(raw) != 2:
        raise ValueError(f"a short topic name has 2 bytes, not {len(raw)}: {name!r}")
    return struct.unpack(">H", raw)[0]


# -- encoders, one per message a client sends --------------------------------

def searchgw(radius=0):
    return frame(SEARCHGW, bytes([radius]))


def gwinfo(gw_id, address=b""):
    return frame(GWINFO, bytes([gw_id]) + address)


def connect(client_id, duration=60, clean=True, will=False, protocol_id=1):
    return frame(CONNECT, bytes([flags(will=will, clean=clean), protocol_id])
                 + struct.pack(">H", duration) + text(client_id))


def willtopic(topic=None, qos=0, retain=False, update=False):
    kind = WILLTOPICUPD if update else WILLTOPIC
    if topic is None:
        return frame(kind)
    return frame(kind, bytes([flags(qos=qos, retain=retain)]) + text(topic))


def willmsg(payload, update=False):
    return frame(WILLMSGUPD if update else WILLMSG, text(payload))


def register(topic, msg_id, topic_id=0):
    return frame(REGISTER, struct.pack(">HH", topic_id, msg_id) + text(topic))


def regack(topic_id, msg_id, code=ACCEPTED):
    return frame(REGACK, struct.pack(">HHB", topic_id, msg_id, code))


def publish(topic_id, payload, msg_id=0, qos=0, retain=False, dup=False, topic_type=NORMAL,
            long_form=False):
    body = bytes([flags(qos=qos, retain=retain, dup=dup, topic_type=topic_type)])
    return frame(PUBLISH, body + struct.pack(">HH", topic_id, msg_id) + text(payload), long_form)


def puback(topic_id, msg_id, code=ACCEPTED):
    return frame(PUBACK, struct.pack(">HHB", topic_id, msg_id, code))


def msg_id_only(msg_type, msg_id):
    return frame(msg_type, struct.pack(">H", msg_id))


def subscribe(topic, msg_id, qos=0, topic_type=NORMAL, unsubscribe=False):
    kind = UNSUBSCRIBE if unsubscribe else SUBSCRIBE
    head = bytes([flags(qos=qos, topic_type=topic_type)]) + struct.pack(">H", msg_id)
    if topic_type == NORMAL:
        return frame(kind, head + text(topic))
    topic_id = short_id(topic) if topic_type == SHORT else int(topic)
    return frame(kind, head + struct.pack(">H", topic_id))


def pingreq(client_id=b""):
    return frame(PINGREQ, text(client_id))


def disconnect(duration=None):
    return frame(DISCONNECT, b"" if duration is None else struct.pack(">H", duration))


# -- decoder ------------------------------------------------------------------

class Msg:
    """A decoded message; fields depend on the type (see decode())."""

    def __init__(self, msg_type, raw):
        self.type = msg_type
        self.raw = raw
        self.long_form = raw[:1] == b"\x01"
        self.flags = 0
        self.return_code = None
        self.topic_id = None
        self.msg_id = None
        self.data = b""
        self.gw_id = None
        self.duration = None

    @property
    def qos(self):
        q = (self.flags >> 5) & 3
        return -1 if q == 3 else q

    @property
    def retain(self):
        return bool(self.flags & RETAIN)

    @property
    def dup(self):
        return bool(self.flags & DUP)

    @property
    def topic_type(self):
        return self.flags & 3

    @property
    def name(self):
        return NAMES.get(self.type, f"0x{self.type:02x}")

    def __repr__(self):
        parts = [self.name]
        for key in ("flags", "return_code", "topic_id", "msg_id", "gw_id", "duration"):
            value = getattr(self, key)
            if value not in (None, 0) or key == "return_code" and value is not None:
                parts.append(f"{key}={value}")
        if self.data:
            parts.append(f"data={self.data[:40]!r}")
        return "<" + " ".join(parts) + ">"


def decode(raw):
    """Decode one datagram from a gateway; raise SnError when it is malformed."""
    if len(raw) < 2:
        raise SnError(f"datagram of {len(raw)} bytes")
    if raw[0] == 1:
        if len(raw) < 4:
            raise SnError("truncated 3-byte Length")
        length, hdr = struct.unpack(">H", raw[1:3])[0], 3
    else:
        length, hdr = raw[0], 1
    if length != len(raw):
        raise SnError(f"Length {length} but datagram of {len(raw)} bytes: {raw.hex()}")
    m = Msg(raw[hdr], raw)
    body = raw[hdr + 1:]
    t = m.type
    try:
        if t == ADVERTISE:
            m.gw_id, m.duration = struct.unpack(">BH", body)
        elif t == GWINFO:
            m.gw_id, m.data = body[0], body[1:]
        elif t in (CONNACK, WILLTOPICRESP, WILLMSGRESP):
            (m.return_code,) = struct.unpack(">B", body)
        elif t in (WILLTOPICREQ, WILLMSGREQ, PINGRESP):
            if body:
                raise SnError(f"{m.name} with a body")
        elif t == REGISTER:
            m.topic_id, m.msg_id = struct.unpack(">HH", body[:4])
            m.data = body[4:]
        elif t in (REGACK, PUBACK):
            m.topic_id, m.msg_id, m.return_code = struct.unpack(">HHB", body)
        elif t == PUBLISH:
            m.flags = body[0]
            m.topic_id, m.msg_id = struct.unpack(">HH", body[1:5])
            m.data = body[5:]
        elif t in (PUBCOMP, PUBREC, PUBREL, UNSUBACK):
            (m.msg_id,) = struct.unpack(">H", body)
        elif t == SUBACK:
            m.flags = body[0]
            m.topic_id, m.msg_id, m.return_code = struct.unpack(">HHB", body[1:])
        elif t == DISCONNECT:
            if len(body) == 2:
                (m.duration,) = struct.unpack(">H", body)
            elif body:
                raise SnError("DISCONNECT with a 1-byte Duration")
        else:
            m.data = body
    except (struct.error, IndexError) as exc:
        raise SnError(f"malformed {m.name}: {raw.hex()} ({exc})") from None
    return m


# -- the client ---------------------------------------------------------------

class Received:
    """One application message the gateway delivered."""

    def __init__(self, topic, payload, qos, retain, dup, topic_type, topic_id):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.topic_type = topic_type
        self.topic_id = topic_id

    def __repr__(self):
        return (f"Received({self.topic!r}, {self.payload[:40]!r}, qos={self.qos}, "
                f"retain={self.retain}, dup={self.dup})")


class Client:
    """One MQTT-SN client on its own UDP socket.

    host, port: the gateway (or a DTLS relay). auto_ack: answer the
    gateway's REGISTER, PUBLISH and PUBREL while waiting; turn it off to
    test retransmission. log: a function taking strings, or None.
    """

    def __init__(self, host, port, client_id="sn-client", timeout=5.0, auto_ack=True, log=None,
                 source=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.client_id = client_id
        self.timeout = timeout
        self.auto_ack = auto_ack
        self.log = log
        self.next_id = 1
        self.topics = {}            # topic id -> name, as the gateway registered them
        self.registered = {}        # name -> topic id the gateway assigned
        self.messages = []          # Received, in arrival order
        self.backlog = []           # replies read while waiting for another one
        self.sent_log = []          # every datagram sent
        self.received_log = []      # every datagram received (decoded)
        self.inqos2 = {}            # msg id -> Received awaiting PUBREL
        self.advertisements = []    # ADVERTISE messages, kept out of the replies

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _log(self, *parts):
        if self.log is not None:
            self.log(" ".join(str(p) for p in parts))

    def msg_id(self):
        value = self.next_id
        self.next_id = self.next_id % 0xFFFF + 1
        return value

    # -- raw I/O --

    def send(self, raw):
        self._log("send", raw.hex())
        self.sent_log.append(raw)
        self.sock.send(raw)

    def recv_raw(self, timeout=None):
        """Return one datagram, or None when none came within timeout."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            raw = self.sock.recv(65536)
        except socket.timeout:
            return None
        except ConnectionRefusedError:
            return None
        self._log("recv", raw.hex())
        return raw

    def _read(self, deadline):
        """Read one datagram before deadline; return (message, handled), or
        (None, False) at the deadline. Deliveries are handled on the way."""
        raw = self.recv_raw(max(0.0, deadline - time.monotonic()))
        if raw is None:
            return None, False
        m = decode(raw)
        self.received_log.append(m)
        return m, self._handle(m)

    def recv(self, timeout=None):
        """Return the next reply that is not a delivery, or None."""
        if self.backlog:
            return self.backlog.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            m, handled = self._read(deadline)
            if m is None:
                return None
            if not handled:
                return m
        return None

    def _wait_for(self, done, timeout, what):
        """Read until done() is true; replies go to the backlog."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() >= deadline:
                raise SnError(f"{what} within {timeout} s")
            m, handled = self._read(deadline)
            if m is not None and not handled:
                self.backlog.append(m)

    def expect(self, msg_type, timeout=None, msg_id=None):
        """Wait for a message of msg_type (and msg_id); keep the others."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        kept = []
        try:
            while True:
                m = self.recv(max(0.0, deadline - time.monotonic()))
                if m is None:
                    raise SnError(f"no {NAMES[msg_type]} within the timeout; other replies: "
                                  f"{kept}")
                if m.type == msg_type and (msg_id is None or m.msg_id == msg_id):
                    return m
                kept.append(m)
        finally:
            self.backlog[:0] = kept

    def silence(self, timeout=1.0):
        """Return the replies that came within timeout (deliveries handled)."""
        out = []
        while True:
            m = self.recv(timeout)
            if m is None:
                return out
            out.append(m)

    # -- deliveries from the gateway --

    def _handle(self, m):
        """Handle ADVERTISE, REGISTER, PUBLISH and PUBREL; return True when consumed."""
        if m.type == ADVERTISE:
            self.advertisements.append(m)
            return True
        if m.type == REGISTER:
            name = m.data.decode("utf-8", "replace")
            self.topics[m.topic_id] = name
            if self.auto_ack:
                self.send(regack(m.topic_id, m.msg_id))
            return self.auto_ack
        if m.type == PUBLISH:
            self._deliver(m)
            return self.auto_ack
        if m.type == PUBREL and self.auto_ack:
            self.inqos2.pop(m.msg_id, None)
            self.send(msg_id_only(PUBCOMP, m.msg_id))
            return True
        return False

    def topic_of(self, topic_type, topic_id):
        if topic_type == SHORT:
            return struct.pack(">H", topic_id).decode("utf-8", "replace")
        if topic_type == PREDEFINED:
            return f"@{topic_id}"
        return self.topics.get(topic_id)

    def _deliver(self, m):
        r = Received(self.topic_of(m.topic_type, m.topic_id), m.data, m.qos, m.retain, m.dup,
                     m.topic_type, m.topic_id)
        if m.qos == 2 and m.msg_id in self.inqos2:
            r = None  # a retransmission already received
        if r is not None:
            self.messages.append(r)
        if not self.auto_ack:
            return
        if m.qos == 1:
            self.send(puback(m.topic_id, m.msg_id))
        elif m.qos == 2:
            if r is not None:
                self.inqos2[m.msg_id] = r
            self.send(msg_id_only(PUBREC, m.msg_id))

    def wait_messages(self, count, timeout=None):
        """Wait until count messages were delivered; return them all."""
        timeout = self.timeout if timeout is None else timeout
        self._wait_for(lambda: len(self.messages) >= count, timeout,
                       f"fewer than {count} messages ({self.messages})")
        return self.messages

    def wait_advertise(self, timeout):
        """Wait for an ADVERTISE; return it."""
        self._wait_for(lambda: self.advertisements, timeout, "no ADVERTISE")
        return self.advertisements[-1]

    # -- procedures --

    def search(self, radius=0):
        self.send(searchgw(radius))
        return self.expect(GWINFO)

    def connect(self, duration=60, clean=True, will=None, client_id=None):
        """Connect; will is (topic, payload, qos, retain) or None. Returns the CONNACK code."""
        self.send(connect(client_id or self.client_id, duration, clean, will is not None))
        if will is not None:
            reply = self.expect_any((WILLTOPICREQ, CONNACK))
            if reply.type == CONNACK:
                return reply.return_code
            topic, payload, qos, retain = will
            self.send(willtopic(topic, qos, retain))
            reply = self.expect_any((WILLMSGREQ, CONNACK))
            if reply.type == CONNACK:
                return reply.return_code
            self.send(willmsg(payload))
        return self.expect(CONNACK).return_code

    def expect_any(self, types, timeout=None):
        m = self.recv(timeout)
        if m is None or m.type not in types:
            raise SnError(f"expected one of {[NAMES[t] for t in types]}, got {m}")
        return m

    def register(self, topic):
        """Register a topic name; return (topic id, return code)."""
        mid = self.msg_id()
        self.send(register(topic, mid))
        reply = self.expect(REGACK, msg_id=mid)
        if reply.return_code == ACCEPTED:
            self.registered[topic] = reply.topic_id
            self.topics[reply.topic_id] = topic
        return reply.topic_id, reply.return_code

    def publish(self, topic, payload, qos=0, retain=False, topic_type=NORMAL, timeout=None):
        """Publish; topic is a name (registered first), an id, or a short name.

        Returns the PUBACK return code for QoS 1 and 2 (after PUBCOMP for
        QoS 2), or None for QoS 0 and -1.
        """
        if topic_type == SHORT:
            topic_id = short_id(topic)
        elif isinstance(topic, int):
            topic_id = topic
        else:
            topic_id = self.registered.get(topic) or self.register(topic)[0]
        mid = self.msg_id() if qos > 0 else 0
        self.send(publish(topic_id, payload, mid, qos, retain, topic_type=topic_type))
        if qos <= 0:
            return None
        if qos == 1:
            return self.expect(PUBACK, timeout, msg_id=mid).return_code
        reply = self.expect_any((PUBREC, PUBACK), timeout)
        if reply.type == PUBACK:
            return reply.return_code
        self.send(msg_id_only(PUBREL, mid))
        self.expect(PUBCOMP, timeout, msg_id=mid)
        return ACCEPTED

    def subscribe(self, topic, qos=0, topic_type=NORMAL):
        """Subscribe; return the SUBACK message."""
        mid = self.msg_id()
        self.send(subscribe(topic, mid, qos, topic_type))
        reply = self.expect(SUBACK, msg_id=mid)
        if reply.return_code == ACCEPTED and topic_type == NORMAL and reply.topic_id:
            self.topics[reply.topic_id] = topic
        return reply

    def unsubscribe(self, topic, topic_type=NORMAL):
        mid = self.msg_id()
        self.send(subscribe(topic, mid, 0, topic_type, unsubscribe=True))
        return self.expect(UNSUBACK, msg_id=mid)

    def ping(self, client_id=b"", timeout=None):
        self.send(pingreq(client_id))
        return self.expect(PINGRESP, timeout)

    def update_will_topic(self, topic=None, qos=0, retain=False):
        self.send(willtopic(topic, qos, retain, update=True))
        return self.expect(WILLTOPICRESP).return_code

    def update_will_msg(self, payload):
        self.send(willmsg(payload, update=True))
        return self.expect(WILLMSGRESP).return_code

    def disconnect(self, duration=None):
        self.send(disconnect(duration))
        return self.expect(DISCONNECT)

    def sleep(self, duration):
        return self.disconnect(duration)

    def wake(self, timeout=None):
        """PINGREQ with the client id: buffered messages, then PINGRESP."""
        return self.ping(self.client_id, timeout)


# -- command line -------------------------------------------------------------

def topic_arg(client, topic, short):
    if short:
        return topic, SHORT
    if topic.startswith("@"):
        return int(topic[1:]), PREDEFINED
    return topic, NORMAL


def main(argv=None):
    ap = argparse.ArgumentParser(description="Minimal MQTT-SN 1.2 client over UDP.")
    ap.add_argument("-H", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, default=1884)
    ap.add_argument("-i", "--id", default="snclient")
    ap.add_argument("-k", "--keep-alive", type=int, default=60)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pub")
    p.add_argument("-t", "--topic", required=True)
    p.add_argument("-m", "--message", default="")
    p.add_argument("-q", "--qos", type=int, default=0, choices=(-1, 0, 1, 2))
    p.add_argument("-r", "--retain", action="store_true")
    p.add_argument("-s", "--short", action="store_true")
    s = sub.add_parser("sub")
    s.add_argument("-t", "--topic", required=True)
    s.add_argument("-q", "--qos", type=int, default=0, choices=(0, 1, 2))
    s.add_argument("-s", "--short", action="store_true")
    s.add_argument("-n", "--count", type=int, default=0, help="exit after COUNT messages")
    sub.add_parser("search")
    args = ap.parse_args(argv)

    with Client(args.host, args.port, args.id) as c:
        if args.cmd == "search":
            print(c.search())
            return 0
        topic, kind = topic_arg(c, args.topic, args.short)
        if args.cmd == "pub" and args.qos == -1:
            c.publish(topic, args.message, -1, args.retain, kind)
            return 0
        code = c.connect(args.keep_alive)
        if code != ACCEPTED:
            print(f"CONNACK return code 0x{code:02x}", file=sys.stderr)
            return 1
        if args.cmd == "pub":
            code = c.publish(topic, args.message, args.qos, args.retain, kind)
            c.disconnect()
            if code not in (None, ACCEPTED):
                print(f"PUBACK return code 0x{code:02x}", file=sys.stderr)
                return 1
            return 0
        reply = c.subscribe(topic, args.qos, kind)
        if reply.return_code != ACCEPTED:
            print(f"SUBACK return code 0x{reply.return_code:02x}", file=sys.stderr)
            return 1
        shown = 0
        last_ping = time.monotonic()
        try:
            while args.count == 0 or shown < args.count:
                c.recv(1.0)
                for r in c.messages[shown:]:
                    print(f"{r.topic} {r.payload.decode('utf-8', 'replace')}", flush=True)
                shown = len(c.messages)
                if time.monotonic() - last_ping > args.keep_alive / 2:
                    c.ping()
                    last_ping = time.monotonic()
        except KeyboardInterrupt:
            pass
        c.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
