"""MQTT 3.1.1 and 5.0 packets built and read as raw bytes.

Builders take already-encoded pieces wherever a test needs to break a rule,
so a case can hand-craft any byte of a packet. Only the standard library is
used.
"""

import socket
import struct
import time

V311 = 4
V5 = 5

# Property identifiers (MQTT 5.0 section 2.2.2.2).
PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
SESSION_EXPIRY = 0x11
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTH_METHOD = 0x15
AUTH_DATA = 0x16
REQUEST_PROBLEM_INFO = 0x17
WILL_DELAY = 0x18
REQUEST_RESPONSE_INFO = 0x19
RESPONSE_INFO = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_AVAILABLE = 0x28
SUB_ID_AVAILABLE = 0x29
SHARED_AVAILABLE = 0x2A

# Property value kinds, used to decode properties the server sends.
_BYTE, _U16, _U32, _VBI, _STR, _BIN, _PAIR = range(7)
PROPERTY_KINDS = {
    PAYLOAD_FORMAT: _BYTE, MESSAGE_EXPIRY: _U32, CONTENT_TYPE: _STR, RESPONSE_TOPIC: _STR,
    CORRELATION_DATA: _BIN, SUBSCRIPTION_ID: _VBI, SESSION_EXPIRY: _U32,
    ASSIGNED_CLIENT_ID: _STR, SERVER_KEEP_ALIVE: _U16, AUTH_METHOD: _STR, AUTH_DATA: _BIN,
    REQUEST_PROBLEM_INFO: _BYTE, WILL_DELAY: _U32, REQUEST_RESPONSE_INFO: _BYTE,
    RESPONSE_INFO: _STR, SERVER_REFERENCE: _STR, REASON_STRING: _STR, RECEIVE_MAXIMUM: _U16,
    TOPIC_ALIAS_MAXIMUM: _U16, TOPIC_ALIAS: _U16, MAXIMUM_QOS: _BYTE, RETAIN_AVAILABLE: _BYTE,
    USER_PROPERTY: _PAIR, MAXIMUM_PACKET_SIZE: _U32, WILDCARD_AVAILABLE: _BYTE,
    SUB_ID_AVAILABLE: _BYTE, SHARED_AVAILABLE: _BYTE,
}

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = (
    8, 9, 10, 11, 12, 13, 14, 15)


def vbi(n):
    """Encode n as an MQTT Variable Byte Integer."""
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def s(text):
    """Encode a UTF-8 string (str) or raw bytes with a two-byte length."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return u16(len(data)) + data


def prop(pid, value):
    """Encode one property; value is int, str, bytes, or (key, value) for a user property."""
    kind = PROPERTY_KINDS.get(pid, _BYTE)
    head = vbi(pid)
    if kind == _BYTE:
        return head + bytes([value])
    if kind == _U16:
        return head + u16(value)
    if kind == _U32:
        return head + u32(value)
    if kind == _VBI:
        return head + vbi(value)
    if kind == _PAIR:
        return head + s(value[0]) + s(value[1])
    return head + s(value)


def props(*encoded):
    """Join encoded properties behind their length."""
    body = b"".join(encoded)
    return vbi(len(body)) + body


def packet(first_byte, body):
    return bytes([first_byte]) + vbi(len(body)) + body


def connect(version=V5, client_id="", keep_alive=60, clean=True, username=None, password=None,
            will=None, properties=b"", flags=None, protocol_name="MQTT"):
    """Build a CONNECT packet.

    will: (topic, payload, qos, retain, will_properties_bytes) or None.
    flags: overrides the computed connect-flags byte.
    properties: encoded properties without the length (v5 only).
    """
    computed = 0x02 if clean else 0
    payload = s(client_id)
    if will is not None:
        wtopic, wpayload, wqos, wretain, wprops = (list(will) + [b""] * 5)[:5]
        computed |= 0x04 | (wqos << 3) | (0x20 if wretain else 0)
        if version == V5:
            payload += vbi(len(wprops)) + wprops
        payload += s(wtopic) + s(wpayload)
    if username is not None:
        computed |= 0x80
        payload += s(username)
    if password is not None:
        computed |= 0x40
        payload += s(password)
    header = s(protocol_name) + bytes([version, computed if flags is None else flags]) + u16(keep_alive)
    if version == V5:
        header += vbi(len(properties)) + properties
    return packet(0x10, header + payload)


def publish(topic, payload=b"", qos=0, packet_id=None, retain=False, dup=False, version=V5,
            properties=b"", flags=None):
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    if flags is not None:
        first = 0x30 | flags
    body = s(topic)
    if qos or packet_id is not None:
        body += u16(packet_id if packet_id is not None else 1)
    if version == V5:
        body += vbi(len(properties)) + properties
    return packet(first, body + payload)


def subscribe(packet_id, filters, version=V5, properties=b"", first=0x82):
    """filters: list of (filter, options byte)."""
    body = u16(packet_id)
    if version == V5:
        body += vbi(len(properties)) + properties
    for topic, options in filters:
        body += s(topic) + bytes([options])
    return packet(first, body)


def unsubscribe(packet_id, filters, version=V5, properties=b"", first=0xA2):
    body = u16(packet_id)
    if version == V5:
        body += vbi(len(properties)) + properties
    for topic in filters:
        body += s(topic)
    return packet(first, body)


def ack(ptype, packet_id, reason=None, properties=None):
    """PUBACK, PUBREC, PUBREL or PUBCOMP."""
    first = (ptype << 4) | (0x02 if ptype == PUBREL else 0)
    body = u16(packet_id)
    if reason is not None:
        body += bytes([reason])
        if properties is not None:
            body += vbi(len(properties)) + properties
    return packet(first, body)


def disconnect(reason=None, properties=None):
    body = b""
    if reason is not None:
        body += bytes([reason])
        if properties is not None:
            body += vbi(len(properties)) + properties
    return packet(0xE0, body)


PINGREQ_BYTES = b"\xc0\x00"


def decode_vbi(data, pos):
    """Return (value, next position); raise ValueError on a bad encoding."""
    value, mult = 0, 1
    for i in range(4):
        if pos >= len(data):
            raise ValueError("truncated variable byte integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) * mult
        if not byte & 0x80:
            return value, pos
        mult *= 128
    raise ValueError("variable byte integer longer than 4 bytes")


def decode_props(data, pos):
    """Return (dict pid -> list of values, next position)."""
    length, pos = decode_vbi(data, pos)
    end = pos + length
    out = {}
    while pos < end:
        pid, pos = decode_vbi(data, pos)
        kind = PROPERTY_KINDS.get(pid)
        if kind is None:
            raise ValueError(f"unknown property 0x{pid:02x} from server")
        if kind == _BYTE:
            val, pos = data[pos], pos + 1
        elif kind == _U16:
            val, pos = struct.unpack_from(">H", data, pos)[0], pos + 2
        elif kind == _U32:
            val, pos = struct.unpack_from(">I", data, pos)[0], pos + 4
        elif kind == _VBI:
            val, pos = decode_vbi(data, pos)
        elif kind == _PAIR:
            klen = struct.unpack_from(">H", data, pos)[0]
            key = data[pos + 2:pos + 2 + klen].decode()
            pos += 2 + klen
            vlen = struct.unpack_from(">H", data, pos)[0]
            val = (key, data[pos + 2:pos + 2 + vlen].decode())
            pos += 2 + vlen
        else:
            slen = struct.unpack_from(">H", data, pos)[0]
            val = data[pos + 2:pos + 2 + slen]
            if kind == _STR:
                val = val.decode()
            pos += 2 + slen
        out.setdefault(pid, []).append(val)
    if pos != end:
        raise ValueError("property length does not match its properties")
    return out, end


class Packet:
    """One packet read from the server."""

    def __init__(self, first, body):
        self.first = first
        self.type = first >> 4
        self.flags = first & 0x0F
        self.body = body
        self.raw = bytes([first]) + vbi(len(body)) + body

    def __repr__(self):
        return f"Packet(type={self.type}, raw={self.raw.hex(' ')})"


class Closed(Exception):
    """The server closed the connection."""


class Timeout(Exception):
    """No packet arrived in time."""


class Conn:
    """A TCP connection that speaks raw MQTT bytes, logging both directions."""

    def __init__(self, port, log=None, timeout=5.0, host="127.0.0.1"):
        self.log = log or (lambda *a: None)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.closed = False

    @property
    def peer_name(self):
        """This client's address as the server reports it in events ("peer")."""
        return f"127.0.0.1:{self.local_port}"

    def send(self, data):
        self.log(f"send[{self.local_port}]", data.hex(" ") if len(data) < 200 else
                 f"{data[:200].hex(' ')} ... ({len(data)} bytes)")
        self.sock.sendall(data)

    def send_quiet(self, data):
        """Send, ignoring a reset from a server that already closed."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.log("send failed:", repr(exc))

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout() from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            raise Closed()
        self.buf += chunk

    def recv(self, timeout=3.0):
        """Return the next Packet; raise Closed or Timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                try:
                    length, pos = decode_vbi(self.buf, 1)
                except ValueError as exc:
                    if "truncated" not in str(exc):
                        raise
                    length = None
                if length is not None and len(self.buf) >= pos + length:
                    pkt = Packet(self.buf[0], self.buf[pos:pos + length])
                    self.buf = self.buf[pos + length:]
                    self.log(f"recv[{self.local_port}]", pkt.raw.hex(" ") if len(pkt.raw) < 200
                             else f"{pkt.raw[:200].hex(' ')} ... ({len(pkt.raw)} bytes)")
                    return pkt
            try:
                self._fill(deadline)
            except Closed:
                if self.buf:
                    self.log(f"closed with partial packet {self.buf.hex(' ')}")
                else:
                    self.log(f"closed[{self.local_port}]")
                raise

    def recv_type(self, ptype, timeout=3.0):
        """Return the next packet of ptype, skipping PINGRESP only."""
        while True:
            pkt = self.recv(timeout)
            if pkt.type == PINGRESP and ptype != PINGRESP:
                continue
            if pkt.type != ptype:
                raise AssertionError(f"expected packet type {ptype}, got {pkt!r}")
            return pkt

    def wait_closed(self, timeout=3.0):
        """Return the bytes received before the close; raise Timeout if still open."""
        deadline = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout()
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Timeout() from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                self.log(f"closed[{self.local_port}] after {data.hex(' ') or 'no bytes'}")
                return data
            data += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse_connack(pkt):
    """Return (session_present, reason_code, properties dict or None)."""
    if pkt.type != CONNACK:
        raise AssertionError(f"expected CONNACK, got {pkt!r}")
    if len(pkt.body) < 2:
        raise AssertionError(f"CONNACK too short: {pkt!r}")
    properties = None
    if len(pkt.body) > 2:
        properties, _ = decode_props(pkt.body, 2)
    return pkt.body[0] & 1, pkt.body[1], properties


def parse_publish(pkt, version=V5):
    """Return a dict with topic, payload, qos, retain, dup, packet_id, properties."""
    if pkt.type != PUBLISH:
        raise AssertionError(f"expected PUBLISH, got {pkt!r}")
    tlen = struct.unpack_from(">H", pkt.body, 0)[0]
    topic = pkt.body[2:2 + tlen].decode()
    pos = 2 + tlen
    qos = (pkt.flags >> 1) & 3
    packet_id = None
    if qos:
        packet_id = struct.unpack_from(">H", pkt.body, pos)[0]
        pos += 2
    properties = {}
    if version == V5:
        properties, pos = decode_props(pkt.body, pos)
    return {"topic": topic, "payload": pkt.body[pos:], "qos": qos, "retain": pkt.flags & 1,
            "dup": (pkt.flags >> 3) & 1, "packet_id": packet_id, "properties": properties}
