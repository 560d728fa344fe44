#!/usr/bin/python3
"""End-to-end tests with Debian's python3-paho-mqtt 1.6 (MQTT 3.1.1 and 5.0).

Usage: /usr/bin/python3 tests/e2e/paho/run.py [NAME-SUBSTRING...]
Environment: VIGIL_TEST_BROKER (vigil|mosquitto), VIGIL, VIGIL_TEST_LOG_DIR.
Against vigil every case also checks events.jsonl for the events its
clients caused (auth_success, subscribe, publish, disconnect, ...).
"""

import os
import queue
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))

import harness  # noqa: E402
import mqttraw as raw  # noqa: E402
from broker import Broker  # noqa: E402
from harness import case, check, check_equal  # noqa: E402
from pahoclient import V5, V311, Client, PacketTypes, properties  # noqa: E402

CONFIGS = {
    "anon": {"anonymous": True, "sys_interval": 1},
    # The authentication cases fail several logins from 127.0.0.1 on
    # purpose, more than vigil's default burst of 5 allows.
    "auth": {"anonymous": False,
             "extra_yaml": "auth:\n  failure_burst: 100\n  failures_per_minute: 6000\n"},
    "small": {"anonymous": True, "limits": {"max_packet_size": 1024}},
    # A hub output budget of 1 MiB under a per-connection bound of 8 MiB,
    # so a stalled subscriber is shed by the budget, not by its own bound.
    "budget": {"anonymous": True, "sys_interval": 1,
               "limits": {"max_output_bytes": 8 * 1024 * 1024,
                          "output_budget_bytes": 1024 * 1024}},
}


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.brokers = {}

    def before(self, c, ctx):
        key = c.needs or "anon"
        b = self.brokers.get(key)
        if b is None or not b.alive():
            b = Broker(self.log_dir, name=f"paho-{key}", **CONFIGS[key])
            b.start()
            self.brokers[key] = b
        ctx.broker = b
        ctx.port = b.port
        ctx.prefix = f"paho{c.number}"
        ctx.expected = []
        ctx.events_before = len(b.events())

    def after(self, c, ctx):
        ctx.broker.check_alive()
        if ctx.vigil:
            # Every paho client records the events its actions must cause;
            # cases add more (acl_deny, or events of raw connections).
            for cl in getattr(ctx, "paho_clients", []):
                if cl.expected_events:
                    check_events(ctx, cl.client_id, sorted(cl.expected_events))
            for client_id, types in ctx.expected:
                check_events(ctx, client_id, types)

    def on_failure(self, c, ctx, exc):
        b = self.brokers.get(c.needs or "anon")
        if b is not None:
            ctx.log("broker stderr tail:\n" + b.stderr_tail())

    def close(self):
        for b in self.brokers.values():
            b.stop()


def check_events(ctx, client_id, types):
    """Wait until events.jsonl has each of types for client_id (vigil only)."""
    def ok(evs):
        seen = {e.get("type") for e in evs[ctx.events_before:] if e.get("client_id") == client_id}
        return all(t in seen for t in types)

    if ctx.broker.wait_events(ok) is None:
        seen = [e for e in ctx.broker.events()[ctx.events_before:]
                if e.get("client_id") == client_id]
        raise AssertionError(f"events for {client_id}: expected types {types}, got "
                             f"{[e.get('type') for e in seen]}")
    if "connect_attempt" not in {e.get("type") for e in ctx.broker.events()[ctx.events_before:]}:
        raise AssertionError("no connect_attempt event during the case")


def check_event_qos(ctx, client_id, etype, qos):
    """Wait for the client's events of etype and check that each carries qos."""
    def found(evs):
        return [e for e in evs[ctx.events_before:]
                if e.get("client_id") == client_id and e.get("type") == etype]

    evs = ctx.broker.wait_events(lambda evs: len(found(evs)) > 0)
    check(evs is not None, f"no {etype} event for {client_id}")
    check_equal({e.get("qos") for e in found(evs)}, {qos}, f"QoS of the {etype} events")


def expect(ctx, client_id, *types):
    ctx.expected.append((client_id, types))


def client(ctx, name, version=V5, clean=True):
    return Client(ctx, ctx.port, f"{ctx.prefix}-{name}", version=version, clean=clean)


def vname(version):
    return "v5" if version == V5 else "v311"


# ======================================================================
# Connect and QoS
# ======================================================================

def qos_case(version, pub_qos, sub_qos):
    @case(f"{vname(version)} publish QoS {pub_qos} subscribe QoS {sub_qos}")
    def _(ctx):
        topic = f"{ctx.prefix}/q"
        sub = client(ctx, "sub", version)
        sub.connect()
        check_equal(sub.subscribe(topic, sub_qos), [sub_qos], "granted QoS")
        pub = client(ctx, "pub", version)
        pub.connect()
        payloads = [f"m{i}".encode() for i in range(5)]
        for p in payloads:
            pub.publish(topic, p, qos=pub_qos)
        got = sub.recv_all(len(payloads))
        check_equal([m.payload for m in got], payloads, "payloads in order")
        check_equal({m.qos for m in got}, {min(pub_qos, sub_qos)}, "delivered QoS")
        sub.expect_nothing(0.5)
        pub.disconnect()
        sub.disconnect()
        expect(ctx, sub.client_id, "auth_success", "subscribe", "disconnect")
        expect(ctx, pub.client_id, "auth_success", "publish", "disconnect")
        if ctx.vigil:
            check_event_qos(ctx, sub.client_id, "subscribe", sub_qos)
            check_event_qos(ctx, pub.client_id, "publish", pub_qos)


for _v in (V311, V5):
    for _q in (0, 1, 2):
        qos_case(_v, _q, _q)
    qos_case(_v, 2, 1)
    qos_case(_v, 1, 0)


# ======================================================================
# Retained messages, wildcards, $SYS
# ======================================================================

def retained_case(version):
    @case(f"{vname(version)} retained set replace clear")
    def _(ctx):
        topic = f"{ctx.prefix}/r"
        pub = client(ctx, "pub", version)
        pub.connect()
        pub.publish(topic, b"one", qos=1, retain=True)
        pub.publish(topic, b"two", qos=1, retain=True)
        s1 = client(ctx, "s1", version)
        s1.connect()
        s1.subscribe(topic, 1)
        m = s1.recv()
        check_equal((m.payload, m.retain), (b"two", True), "retained replaced")
        s1.expect_nothing(0.5)
        # A live copy to an existing subscriber has retain 0 (MQTT-3.3.1-9).
        pub.publish(topic, b"three", qos=1, retain=True)
        m = s1.recv()
        check_equal((m.payload, m.retain), (b"three", False), "live retained copy")
        pub.publish(topic, b"", qos=1, retain=True)
        m = s1.recv()
        check_equal(m.payload, b"", "empty retained forwarded")
        s2 = client(ctx, "s2", version)
        s2.connect()
        s2.subscribe(f"{ctx.prefix}/#", 1)
        s2.expect_nothing(1.0)
        expect(ctx, pub.client_id, "auth_success", "publish")


retained_case(V311)
retained_case(V5)


@case("v5 wildcards match levels")
def _(ctx):
    p = ctx.prefix
    s_plus = client(ctx, "plus")
    s_plus.connect()
    s_plus.subscribe(f"{p}/+/temp", 0)
    s_hash = client(ctx, "hash")
    s_hash.connect()
    s_hash.subscribe(f"{p}/#", 0)
    pub = client(ctx, "pub")
    pub.connect()
    for t in (f"{p}/a/temp", f"{p}/a/b/temp", f"{p}", f"{p}/b/hum"):
        pub.publish(t, t.encode(), qos=0)
    pub.publish(f"{p}/z/temp", b"end", qos=1)
    got_plus = [m.topic for m in s_plus.recv_all(2)]
    check_equal(got_plus, [f"{p}/a/temp", f"{p}/z/temp"], "topics for +")
    got_hash = [m.topic for m in s_hash.recv_all(5)]
    # "p/#" also matches the parent level "p" (MQTT 4.7.1.2).
    check_equal(got_hash, [f"{p}/a/temp", f"{p}/a/b/temp", p, f"{p}/b/hum", f"{p}/z/temp"],
                "topics for #")


@case("$SYS not matched by # or +")
def _(ctx):
    s_all = client(ctx, "all")
    s_all.connect()
    s_all.subscribe("#", 0)
    s_plus = client(ctx, "plus")
    s_plus.connect()
    s_plus.subscribe("+/broker/#", 0)
    s_sys = client(ctx, "sys")
    s_sys.connect()
    s_sys.subscribe("$SYS/broker/#", 0)
    # $SYS topics are published every second by this broker configuration.
    m = s_sys.recv(timeout=5.0)
    check(m.topic.startswith("$SYS/broker/"), f"unexpected topic {m.topic}")
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        for c in (s_all, s_plus):
            try:
                m = c.messages.get(timeout=0.1)
            except Exception:
                continue
            check(not m.topic.startswith("$"), f"{c.client_id} received {m.topic}")


@case("$SYS broker metrics present")
def _(ctx):
    s_sys = client(ctx, "sys")
    s_sys.connect()
    s_sys.subscribe("$SYS/broker/#", 0)
    topics = set()
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        try:
            topics.add(s_sys.messages.get(timeout=0.2).topic)
        except Exception:
            pass
    ctx.log("$SYS topics:", sorted(topics))
    check(len(topics) >= 3, f"expected several $SYS/broker/ metrics, got {sorted(topics)}")
    check(any("clients" in t for t in topics), f"no client count metric in {sorted(topics)}")
    check(any("messages" in t or "publish" in t for t in topics),
          f"no message count metric in {sorted(topics)}")


# ======================================================================
# Subscription options and identifiers
# ======================================================================

@case("v5 no local")
def _(ctx):
    topic = f"{ctx.prefix}/nl"
    c = client(ctx, "self")
    c.connect()
    c.subscribe(topic, 1, no_local=True)
    other = client(ctx, "other")
    other.connect()
    c.publish(topic, b"mine", qos=1)
    other.publish(topic, b"theirs", qos=1)
    check_equal(c.recv().payload, b"theirs", "only the other client's message")
    c.expect_nothing(0.7)


@case("v5 retain as published")
def _(ctx):
    topic = f"{ctx.prefix}/rap"
    keep = client(ctx, "keep")
    keep.connect()
    keep.subscribe(topic, 1, rap=True)
    clear = client(ctx, "clear")
    clear.connect()
    clear.subscribe(topic, 1, rap=False)
    pub = client(ctx, "pub")
    pub.connect()
    pub.publish(topic, b"r", qos=1, retain=True)
    check_equal(keep.recv().retain, True, "retain flag with retain as published")
    check_equal(clear.recv().retain, False, "retain flag without retain as published")
    pub.publish(topic, b"", qos=1, retain=True)


@case("v5 retain handling 0 1 2")
def _(ctx):
    topic = f"{ctx.prefix}/rh"
    pub = client(ctx, "pub")
    pub.connect()
    pub.publish(topic, b"kept", qos=1, retain=True)
    results = {}
    for rh in (0, 1, 2):
        c = client(ctx, f"rh{rh}")
        c.connect()
        c.subscribe(topic, 1, rh=rh)
        first = []
        try:
            first.append(c.recv(timeout=1.0).payload)
        except AssertionError:
            pass
        c.subscribe(topic, 1, rh=rh)  # the same subscription again
        again = []
        try:
            again.append(c.recv(timeout=1.0).payload)
        except AssertionError:
            pass
        results[rh] = (first, again)
    ctx.log("retain handling results", results)
    check_equal(results[0], ([b"kept"], [b"kept"]), "retain handling 0: on every subscribe")
    check_equal(results[1], ([b"kept"], []), "retain handling 1: only on a new subscription")
    check_equal(results[2], ([], []), "retain handling 2: never")
    pub.publish(topic, b"", qos=1, retain=True)


@case("v5 subscription identifiers delivered")
def _(ctx):
    p = ctx.prefix
    c = client(ctx, "sub")
    c.connect()
    c.subscribe(f"{p}/a/+", 1, sub_id=7)
    c.subscribe(f"{p}/b/#", 1, sub_id=300000)
    pub = client(ctx, "pub")
    pub.connect()
    pub.publish(f"{p}/a/x", b"1", qos=1)
    pub.publish(f"{p}/b/y", b"2", qos=1)
    m1, m2 = c.recv(), c.recv()
    check_equal(m1.prop("SubscriptionIdentifier"), [7], "identifier for a/+")
    check_equal(m2.prop("SubscriptionIdentifier"), [300000], "identifier for b/#")


@case("v5 shared subscription round robin")
def _(ctx):
    topic = f"{ctx.prefix}/shared"
    members = []
    for i in range(2):
        c = client(ctx, f"m{i}")
        c.connect()
        c.subscribe(f"$share/grp/{topic}", 1)
        members.append(c)
    plain = client(ctx, "plain")
    plain.connect()
    plain.subscribe(topic, 1)
    pub = client(ctx, "pub")
    pub.connect()
    n = 10
    for i in range(n):
        pub.publish(topic, str(i).encode(), qos=1)
    check_equal(sorted(int(m.payload) for m in plain.recv_all(n)), list(range(n)),
                "plain subscriber gets every message")
    got = [[], []]
    deadline = time.monotonic() + 5
    while sum(map(len, got)) < n and time.monotonic() < deadline:
        for i, c in enumerate(members):
            try:
                got[i].append(int(c.messages.get(timeout=0.1).payload))
            except Exception:
                pass
    ctx.log("shared members got", got)
    check_equal(sorted(got[0] + got[1]), list(range(n)), "each message to exactly one member")
    check(abs(len(got[0]) - len(got[1])) <= 1, f"not round robin: {len(got[0])} vs {len(got[1])}")


# MQTT 5.0 3.3.4 requires one copy at the highest QoS and allows one copy
# per subscription; vigil sends one, mosquitto 2.0.11 one per subscription.
@case("v5 overlapping subscriptions delivered once", only="vigil")
def _(ctx):
    p = ctx.prefix
    c = client(ctx, "sub")
    c.connect()
    c.subscribe(f"{p}/#", 0)
    c.subscribe(f"{p}/x/+", 2)
    c.subscribe(f"{p}/x/y", 1)
    pub = client(ctx, "pub")
    pub.connect()
    pub.publish(f"{p}/x/y", b"o", qos=2)
    m = c.recv()
    check_equal(m.qos, 2, "QoS of the highest matching subscription")
    c.expect_nothing(1.0)


# ======================================================================
# Sessions, wills, expiry
# ======================================================================

def offline_case(version):
    @case(f"{vname(version)} persistent session queues offline messages")
    def _(ctx):
        topic = f"{ctx.prefix}/off"
        sub = client(ctx, "sub", version, clean=False)
        sp, _, _ = sub.connect(session_expiry=3600)
        sub.subscribe(topic, 2)
        sub.disconnect()
        pub = client(ctx, "pub", version)
        pub.connect()
        for i, qos in enumerate((0, 1, 2, 1, 2)):
            pub.publish(topic, f"q{qos}-{i}".encode(), qos=qos)
        sub2 = Client(ctx, ctx.port, sub.client_id, version=version, clean=False)
        sp, _, _ = sub2.connect(session_expiry=3600)
        check_equal(sp, 1, "session present")
        got = sorted(m.payload for m in sub2.recv_all(4))
        # QoS 0 messages may be dropped for an offline client (MQTT 3.1.1
        # 3.1.2.4 leaves that to the server); QoS 1 and 2 must all arrive.
        extra = []
        try:
            extra.append(sub2.recv(timeout=1.0).payload)
        except AssertionError:
            pass
        all_got = sorted(got + extra)
        for want in (b"q1-1", b"q2-2", b"q1-3", b"q2-4"):
            check(want in all_got, f"{want} missing from {all_got}")
        check(len(all_got) == len(set(all_got)), f"duplicates in {all_got}")
        sub2.disconnect()
        cleanup = Client(ctx, ctx.port, sub.client_id, version=version, clean=True)
        cleanup.connect()
        cleanup.disconnect()
        expect(ctx, sub.client_id, "auth_success", "subscribe", "disconnect")


offline_case(V311)
offline_case(V5)


@case("v5 session expiry elapses")
def _(ctx):
    topic = f"{ctx.prefix}/exp"
    sub = client(ctx, "sub", clean=False)
    sub.connect(session_expiry=1)
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = client(ctx, "pub")
    pub.connect()
    pub.publish(topic, b"lost", qos=1)
    time.sleep(2.5)
    sub2 = Client(ctx, ctx.port, sub.client_id, clean=False)
    sp, _, _ = sub2.connect(session_expiry=1)
    check_equal(sp, 0, "session present after expiry")
    sub2.expect_nothing(1.0)


@case("v5 will delay interval")
def _(ctx):
    topic = f"{ctx.prefix}/will"
    watcher = client(ctx, "watch")
    watcher.connect()
    watcher.subscribe(topic, 1)
    dev = client(ctx, "dev")
    wprops = properties(PacketTypes.WILLMESSAGE, WillDelayInterval=2)
    dev.connect(session_expiry=10, will=(topic, b"gone", 1, False, wprops))
    dropped = time.monotonic()
    dev.abort()
    m = watcher.recv(timeout=6.0)
    waited = m.received_at - dropped
    ctx.log(f"will after {waited:.2f} s")
    check_equal(m.payload, b"gone", "will payload")
    check(waited >= 1.8, f"will sent after {waited:.2f} s, before its 2 s delay")


@case("v5 will not sent after reconnect in time")
def _(ctx):
    topic = f"{ctx.prefix}/will"
    watcher = client(ctx, "watch")
    watcher.connect()
    watcher.subscribe(topic, 1)
    dev = client(ctx, "dev", clean=False)
    wprops = properties(PacketTypes.WILLMESSAGE, WillDelayInterval=3)
    dev.connect(session_expiry=30, will=(topic, b"gone", 1, False, wprops))
    dev.abort()
    time.sleep(0.5)
    dev2 = Client(ctx, ctx.port, dev.client_id, clean=False)
    dev2.connect(session_expiry=30)
    watcher.expect_nothing(4.0)
    dev2.disconnect(SessionExpiryInterval=0)


@case("v311 will on keep-alive timeout")
def _(ctx):
    topic = f"{ctx.prefix}/will"
    watcher = client(ctx, "watch", V311)
    watcher.connect()
    watcher.subscribe(topic, 1)
    # A raw socket keeps the connection open but silent, unlike paho, which
    # would send PINGREQ.
    conn = raw.Conn(ctx.port, log=ctx.log)
    ctx.defer(conn.close)
    cid = f"{ctx.prefix}-silent"
    conn.send(raw.connect(raw.V311, cid, keep_alive=1, will=(topic, b"timeout", 1, False)))
    check_equal(conn.recv().raw, b"\x20\x02\x00\x00", "CONNACK bytes")
    # mosquitto 2.0.11 checks keep-alives only every few seconds.
    m = watcher.recv(timeout=4.0 if ctx.vigil else 10.0)
    check_equal(m.payload, b"timeout", "will payload")
    expect(ctx, cid, "auth_success", "disconnect")


@case("v5 message expiry while queued")
def _(ctx):
    topic = f"{ctx.prefix}/mexp"
    sub = client(ctx, "sub", clean=False)
    sub.connect(session_expiry=600)
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = client(ctx, "pub")
    pub.connect()
    pub.publish(topic, b"short", qos=1, MessageExpiryInterval=1)
    pub.publish(topic, b"long", qos=1, MessageExpiryInterval=120)
    time.sleep(2.5)
    sub2 = Client(ctx, ctx.port, sub.client_id, clean=False)
    sub2.connect(session_expiry=0)
    m = sub2.recv()
    check_equal(m.payload, b"long", "only the unexpired message")
    remaining = m.prop("MessageExpiryInterval")
    # The forwarded interval is reduced by the time spent queued (MQTT-3.3.2-6).
    check(remaining is not None and remaining <= 118, f"expiry interval {remaining} not reduced")
    sub2.expect_nothing(0.7)


# ======================================================================
# Properties, aliases, request/response, packet size
# ======================================================================

@case("v5 publish properties passed through")
def _(ctx):
    topic = f"{ctx.prefix}/props"
    sub = client(ctx, "sub")
    sub.connect()
    sub.subscribe(topic, 1)
    pub = client(ctx, "pub")
    pub.connect()
    pub.publish(topic, "héllo".encode(), qos=1, UserProperty=[("unit", "bpm"), ("unit", "x2")],
                ContentType="text/plain", ResponseTopic=f"{topic}/reply",
                CorrelationData=b"\x00\x01corr", PayloadFormatIndicator=1)
    m = sub.recv()
    check_equal(m.payload, "héllo".encode(), "payload")
    check_equal(m.prop("UserProperty"), [("unit", "bpm"), ("unit", "x2")],
                "user properties in order")
    check_equal(m.prop("ContentType"), "text/plain", "content type")
    check_equal(m.prop("ResponseTopic"), f"{topic}/reply", "response topic")
    check_equal(m.prop("CorrelationData"), b"\x00\x01corr", "correlation data")
    check_equal(m.prop("PayloadFormatIndicator"), 1, "payload format")


@case("v5 topic alias from client")
def _(ctx):
    topic = f"{ctx.prefix}/alias"
    sub = client(ctx, "sub")
    sub.connect()
    sub.subscribe(topic, 1)
    pub = client(ctx, "pub")
    _, _, cprops = pub.connect()
    maximum = getattr(cprops, "TopicAliasMaximum", 0)
    check(maximum >= 1, f"server Topic Alias Maximum {maximum}")
    pub.publish(topic, b"first", qos=1, TopicAlias=1)
    pub.publish("", b"second", qos=1, TopicAlias=1)
    got = sub.recv_all(2)
    check_equal([(m.topic, m.payload) for m in got], [(topic, b"first"), (topic, b"second")],
                "aliased messages")


@case("v5 request response")
def _(ctx):
    req_topic = f"{ctx.prefix}/req"
    resp_topic = f"{ctx.prefix}/resp"
    responder = client(ctx, "responder")
    responder.connect()
    responder.subscribe(req_topic, 1)
    requester = client(ctx, "requester")
    requester.connect()
    requester.subscribe(resp_topic, 1)
    requester.publish(req_topic, b"ping?", qos=1, ResponseTopic=resp_topic, CorrelationData=b"id-42")
    req = responder.recv()
    responder.publish(req.prop("ResponseTopic"), b"pong", qos=1,
                      CorrelationData=req.prop("CorrelationData"))
    resp = requester.recv()
    check_equal((resp.topic, resp.payload, resp.prop("CorrelationData")),
                (resp_topic, b"pong", b"id-42"), "response")


@case("v5 response information", only="vigil")
def _(ctx):
    # Response Information is optional (MQTT 5.0 3.2.2.3.15); mosquitto
    # 2.0.11 never sends it, vigil does when asked.
    c = client(ctx, "ri")
    _, _, cprops = c.connect(RequestResponseInformation=1)
    info = getattr(cprops, "ResponseInformation", None)
    check(info, f"no Response Information in CONNACK: {cprops}")
    resp_topic = f"{info.rstrip('/')}/answer"
    c.subscribe(resp_topic, 1)
    c.publish(resp_topic, b"ok", qos=1)
    check_equal(c.recv().payload, b"ok", "message on the response topic")


@case("v5 client maximum packet size respected")
def _(ctx):
    topic = f"{ctx.prefix}/mps"
    sub = client(ctx, "sub")
    sub.connect(MaximumPacketSize=200)
    sub.subscribe(topic, 1)
    pub = client(ctx, "pub")
    pub.connect()
    pub.publish(topic, b"B" * 500, qos=1)
    pub.publish(topic, b"small", qos=1)
    # The server must drop a message larger than the client's limit
    # (MQTT-3.1.2-25) and still deliver the next one.
    m = sub.recv()
    check_equal(m.payload, b"small", "only the message that fits")
    sub.expect_nothing(0.5)


@case("v5 server maximum packet size enforced", needs="small")
def _(ctx):
    c = client(ctx, "big")
    _, _, cprops = c.connect()
    check_equal(getattr(cprops, "MaximumPacketSize", None), 1024, "Maximum Packet Size")
    c.c._maxPacketSize = None  # let paho send past the server's limit
    c.publish(f"{ctx.prefix}/big", b"X" * 3000, qos=1, wait=False, expect_event=False)
    rc = c.wait_disconnected()
    if ctx.vigil:
        check_equal(rc, 0x95, "DISCONNECT reason")
    else:
        # mosquitto 2.0.11 closes without DISCONNECT; paho reports 7, a lost connection.
        check(rc in (0x95, 7), f"disconnect reason {rc}")


# ======================================================================
# Output budget
# ======================================================================

BUDGET_MSGS = 640          # 10 MiB of 16 KiB payloads
BUDGET_BURST = 16          # published before waiting for the fast subscriber
BUDGET_PAYLOAD = 16 * 1024


def stalled_subscriber(ctx, topic):
    """A raw MQTT 3.1.1 subscriber that stops reading after its SUBACK."""
    conn = raw.Conn(ctx.port, log=ctx.log)
    ctx.defer(conn.close)
    # A small receive buffer makes the hub's output back up sooner.
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.send(raw.connect(raw.V311, f"{ctx.prefix}-slow"))
    check_equal(raw.parse_connack(conn.recv_type(raw.CONNACK))[1], 0, "slow CONNACK code")
    conn.send(raw.subscribe(1, [(topic, 0)], version=raw.V311))
    conn.recv_type(raw.SUBACK)
    return conn


def sys_values(observer, values, until=None, timeout=5.0):
    """Collect $SYS/broker/output/* values into values until until(values)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until is not None and until(values):
            return True
        try:
            m = observer.messages.get(timeout=0.2)
        except queue.Empty:
            continue
        values[m.topic.rsplit("output/", 1)[1]] = int(m.payload)
    return until is None or until(values)


@case("v311 output budget sheds only the stalled subscriber", only="vigil", needs="budget")
def _(ctx):
    topic = f"{ctx.prefix}/waveform"
    observer = client(ctx, "sys", V311)
    observer.connect()
    observer.subscribe("$SYS/broker/output/#", 0)
    fast = client(ctx, "fast", V311)
    seen = []
    got = threading.Condition()

    def on_message(cl, userdata, msg):
        with got:
            seen.append(int.from_bytes(msg.payload[:4], "big"))
            got.notify_all()

    fast.c.on_message = on_message
    fast.connect()
    fast.subscribe(topic, 0)
    slow = stalled_subscriber(ctx, topic)
    pub = client(ctx, "pub", V311)
    pub.connect()
    filler = b"w" * (BUDGET_PAYLOAD - 4)
    for start in range(0, BUDGET_MSGS, BUDGET_BURST):
        for i in range(start, start + BUDGET_BURST):
            pub.publish(topic, i.to_bytes(4, "big") + filler, wait=False)
        # The fast subscriber catches up before the next burst, so its own
        # unsent output never exceeds one burst (256 KiB).
        with got:
            got.wait_for(lambda: len(seen) >= start + BUDGET_BURST, 10.0)
        check_equal(len(seen), start + BUDGET_BURST, "messages at the fast subscriber")
    check_equal(seen, list(range(BUDGET_MSGS)), "fast subscriber got every message in order")

    values = {}
    sys_values(observer, values, lambda v: v.get("dropped/budget", 0) > 0)
    ctx.log("$SYS output values:", values)
    check(values.get("dropped/budget", 0) > 0, f"no budget drops in $SYS: {values}")
    check_equal(values.get("dropped/connection", 0), 0, "drops over the per-connection bound")
    # The stalled subscriber alone could hold 8 MiB under its own bound;
    # the budget keeps the hub near 1 MiB plus one burst to fast.
    check(values.get("maximum", 0) < 2 * 1024 * 1024,
          f"$SYS/broker/output/maximum {values.get('maximum')} not under 2 MiB")

    # Reading what the stalled subscriber got would take minutes through a
    # 4 KiB receive window; the limit event below names it instead.
    slow.close()
    check(sys_values(observer, values, lambda v: v.get("bytes") == 0, timeout=6.0),
          f"$SYS/broker/output/bytes did not return to 0: {values}")

    def dropped_for(evs, client_id):
        return [e for e in evs[ctx.events_before:] if e.get("type") == "limit"
                and e.get("client_id") == client_id
                and "QoS 0 messages dropped" in e.get("detail", "")]

    evs = ctx.broker.wait_events(lambda evs: dropped_for(evs, f"{ctx.prefix}-slow"))
    check(evs is not None, "no limit event for the stalled subscriber")
    check("output_budget_bytes" in dropped_for(evs, f"{ctx.prefix}-slow")[0]["detail"],
          "limit event names limits.output_budget_bytes")
    check_equal(dropped_for(evs, fast.client_id), [], "limit events for the fast subscriber")
    pub.disconnect()
    fast.disconnect()
    observer.disconnect()


# ======================================================================
# Authentication and access control
# ======================================================================

def auth_client(ctx, device, version=V5):
    return Client(ctx, ctx.port, device, version=version)


@case("v5 device good password", needs="auth")
def _(ctx):
    dev = f"{ctx.prefix}dev"
    pw = ctx.broker.add_device(dev)
    c = auth_client(ctx, dev)
    c.connect(username=dev, password=pw)
    c.disconnect()
    expect(ctx, dev, "auth_success", "disconnect")


@case("v311 device good password", needs="auth")
def _(ctx):
    dev = f"{ctx.prefix}dev"
    pw = ctx.broker.add_device(dev)
    c = auth_client(ctx, dev, V311)
    c.connect(username=dev, password=pw)
    c.disconnect()
    expect(ctx, dev, "auth_success", "disconnect")


@case("v5 bad password rejected", needs="auth")
def _(ctx):
    dev = f"{ctx.prefix}dev"
    ctx.broker.add_device(dev)
    c = auth_client(ctx, dev)
    _, rc, _ = c.connect(username=dev, password="wrong-password", expect_rc=None)
    # 0x86 "Bad User Name or Password" and 0x87 "Not authorized" both fit;
    # mosquitto 2.0.11 sends 0x87.
    check(rc in (0x86, 0x87), f"CONNACK reason 0x{rc:02x} for a bad password")
    expect(ctx, dev, "auth_failure")


@case("v311 bad password rejected", needs="auth")
def _(ctx):
    dev = f"{ctx.prefix}dev"
    ctx.broker.add_device(dev)
    c = auth_client(ctx, dev, V311)
    _, rc, _ = c.connect(username=dev, password="wrong-password", expect_rc=None)
    # 4 "bad user name or password" or 5 "not authorized".
    check(rc in (4, 5), f"CONNACK return code {rc} for a bad password")
    expect(ctx, dev, "auth_failure")


@case("v5 unknown user rejected", needs="auth")
def _(ctx):
    c = auth_client(ctx, f"{ctx.prefix}ghost")
    _, rc, _ = c.connect(username=f"{ctx.prefix}ghost", password="pw", expect_rc=None)
    check(rc in (0x86, 0x87), f"CONNACK reason 0x{rc:02x} for an unknown user")
    bad = auth_client(ctx, f"{ctx.prefix}known")
    ctx.broker.add_device(bad.client_id)
    _, rc_bad, _ = bad.connect(username=bad.client_id, password="pw", expect_rc=None)
    # The same code as a bad password, so probing cannot tell the ids apart.
    check_equal(rc, rc_bad, "reason for an unknown user equals that for a bad password")
    expect(ctx, f"{ctx.prefix}ghost", "auth_failure")


@case("v5 anonymous rejected", needs="auth")
def _(ctx):
    c = auth_client(ctx, f"{ctx.prefix}anon")
    _, rc, _ = c.connect(expect_rc=None)
    # Without credentials either "bad user name or password" or "not
    # authorized" describes the rejection.
    check(rc in (0x86, 0x87), f"CONNACK reason 0x{rc:02x}")
    expect(ctx, f"{ctx.prefix}anon", "auth_failure")


def acl_case(version):
    @case(f"{vname(version)} device ACL own and other subtree", needs="auth")
    def _(ctx):
        dev = f"{ctx.prefix}{vname(version)}dev"
        pw = ctx.broker.add_device(dev)
        c = auth_client(ctx, dev, version)
        c.connect(username=dev, password=pw)
        own = f"north/icu3/room305/{dev}/hr"
        other = "north/icu3/room306/someone-else/hr"
        denied = 0x87 if version == V5 else 0x80
        check_equal(c.subscribe(f"north/icu3/room305/{dev}/#", 1), [1], "own subtree SUBACK")
        granted = c.subscribe("north/icu3/room306/someone-else/#", 1)
        if ctx.vigil:
            check_equal(granted, [denied], "other subtree SUBACK")
        else:
            # mosquitto 2.0.11 grants the subscription and filters each
            # message on delivery instead.
            check(granted in ([denied], [1]), f"other subtree SUBACK {granted}")
        c.publish(own, b"72", qos=1)
        check_equal(c.recv().payload, b"72", "own message back")
        mon = f"{ctx.prefix}{vname(version)}mon"
        mpw = ctx.broker.add_device(mon, role="monitor")
        m = auth_client(ctx, mon, version)
        m.connect(username=mon, password=mpw)
        check_equal(m.subscribe("+/+/+/+/#", 1), [1], "monitor SUBACK")
        check_equal(m.subscribe("north/icu3/room306/someone-else/#", 1), [1],
                    "monitor SUBACK for any device")
        c.publish(own, b"73", qos=1)
        got = m.recv()
        check_equal((got.topic, got.payload), (own, b"73"), "monitor sees the device")
        check_equal(c.recv().payload, b"73", "device gets its own message")
        m.publish(other, b"from-monitor", qos=1, expect_event=False)
        c.expect_nothing(0.7)
        # The denied publish comes last because it may end the connection.
        if version == V5:
            # A raw connection reads the PUBACK reason code; it takes over
            # the paho client's session, which the test no longer needs.
            rc = publish_reason(ctx, dev, pw, other)
            check_equal(rc, 0x87, "PUBACK reason for another subtree")
        else:
            # v3.1.1 has no negative PUBACK: the message is acknowledged and
            # dropped, or the connection is closed.
            c.publish(other, b"x", qos=1, wait=False, expect_event=False)
        m.expect_nothing(1.0)
        expect(ctx, dev, "auth_success", "subscribe", "acl_deny", "publish")


def publish_reason(ctx, dev, pw, topic):
    """Publish QoS 1 on a raw v5 connection and return the PUBACK reason code."""
    conn = raw.Conn(ctx.port, log=ctx.log)
    ctx.defer(conn.close)
    conn.send(raw.connect(raw.V5, f"{dev}", username=dev, password=pw))
    check_equal(raw.parse_connack(conn.recv())[1], 0, "CONNACK code")
    conn.send(raw.publish(topic, b"x", qos=1, packet_id=9))
    pkt = conn.recv_type(raw.PUBACK)
    check_equal(pkt.body[:2], b"\x00\x09", "PUBACK packet id")
    return pkt.body[2] if len(pkt.body) > 2 else 0


acl_case(V311)
acl_case(V5)


if __name__ == "__main__":
    sys.exit(harness.run("e2e/paho", Fixture))
