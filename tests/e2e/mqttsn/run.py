#!/usr/bin/python3
"""End-to-end tests of vigil's MQTT-SN 1.2 gateway.

tests/lib/snclient.py drives the plaintext listeners on 127.0.0.1 and ::1
and, through tests/tools/sn_dtls_client, the DTLS listener; paho (Debian's
python3-paho-mqtt) is the MQTT client on the other side. Each case checks
the exact MQTT-SN replies and the events in events.jsonl. Every case is
vigil-only: mosquitto has no MQTT-SN gateway.

Usage: /usr/bin/python3 tests/e2e/mqttsn/run.py [NAME-SUBSTRING...]
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import snbroker  # noqa: E402  (puts tests/lib on the path)
import harness  # noqa: E402
import snclient as sn  # noqa: E402
from harness import case, check, check_equal  # noqa: E402
from pahoclient import V311, Client as Paho  # noqa: E402
from snbroker import GATEWAY_ID, SLEEP_QUEUE, Relay, SnBroker  # noqa: E402

BROKERS = {
    "anon": {"anonymous": True},
    "auth": {"anonymous": False},
    "dtls": {"anonymous": True, "dtls": True},
}


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.brokers = {}

    def before(self, c, ctx):
        key = c.needs or "anon"
        b = self.brokers.get(key)
        if b is None or not b.alive():
            b = SnBroker(self.log_dir, name=f"mqttsn-{key}", **BROKERS[key])
            b.start()
            self.brokers[key] = b
        ctx.broker = b
        ctx.prefix = f"sn{c.number}"
        ctx.events_before = len(b.events())

    def after(self, c, ctx):
        ctx.broker.check_alive()

    def on_failure(self, c, ctx, exc):
        b = self.brokers.get(c.needs or "anon")
        if b is not None:
            ctx.log("broker stderr tail:\n" + b.stderr_tail())

    def close(self):
        for b in self.brokers.values():
            b.stop()


# -- helpers ---------------------------------------------------------------

def sn_client(ctx, name, v6=False, port=None, **kwargs):
    host = "::1" if v6 else "127.0.0.1"
    if port is None:
        port = ctx.broker.sn_port6 if v6 else ctx.broker.sn_port
    c = sn.Client(host, port, f"{ctx.prefix}-{name}", log=ctx.log, **kwargs)
    ctx.defer(c.close)
    return c


def paho(ctx, name):
    p = Paho(ctx, ctx.broker.port, f"{ctx.prefix}-{name}", version=V311)
    ctx.defer(p.close)
    p.connect()
    return p


def local_peer(c):
    host, port = c.sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def wait_event(ctx, pred, what, timeout=5.0):
    evs = ctx.broker.wait_events(lambda es: any(pred(e) for e in es[ctx.events_before:]),
                                 timeout)
    if evs is None:
        got = [(e.get("type"), e.get("rule"), e.get("detail"))
               for e in ctx.broker.events()[ctx.events_before:]]
        raise AssertionError(f"no {what} event; events of the case: {got}")
    return [e for e in evs[ctx.events_before:] if pred(e)][0]


def peer_event(ctx, c, etype, rule=None, timeout=5.0):
    peer = local_peer(c)
    return wait_event(ctx, lambda e: e.get("type") == etype and e.get("peer") == peer and
                      (rule is None or e.get("rule") == rule), f"{etype} {rule or ''} for {peer}",
                      timeout)


def connected(ctx, name, **kwargs):
    c = sn_client(ctx, name, **{k: v for k, v in kwargs.items() if k in ("v6", "auto_ack")})
    code = c.connect(kwargs.get("duration", 60), kwargs.get("clean", True), kwargs.get("will"))
    check_equal(code, sn.ACCEPTED, "CONNACK return code")
    return c


# -- discovery and connection ------------------------------------------------

@case("searchgw gets gwinfo", only="vigil")
def t_searchgw(ctx):
    c = sn_client(ctx, "s")
    info = c.search()
    check_equal(info.gw_id, GATEWAY_ID, "GWINFO GwId")
    check_equal(info.data, b"", "GWINFO GwAdd from the gateway itself")


@case("advertise to known peers", only="vigil")
def t_advertise(ctx):
    c = sn_client(ctx, "a")
    c.search()
    adv = c.wait_advertise(snbroker.ADVERTISE_S * 2 + 1)
    check_equal(adv.gw_id, GATEWAY_ID, "ADVERTISE GwId")
    check_equal(adv.duration, snbroker.ADVERTISE_S, "ADVERTISE Duration")


@case("connect and disconnect ipv4", only="vigil")
def t_connect_v4(ctx):
    c = connected(ctx, "c")
    check_equal(peer_event(ctx, c, "auth_success")["client_id"], c.client_id, "client id")
    check_equal(c.disconnect().duration, None, "DISCONNECT reply without Duration")
    check_equal(peer_event(ctx, c, "disconnect")["detail"], "client disconnected", "reason")


@case("pub sub over ipv6", only="vigil")
def t_ipv6(ctx):
    c = connected(ctx, "c6", v6=True)
    check(local_peer(c).startswith("[::1]:"), "client on ::1")
    check_equal(c.subscribe("sn6/t", 1).return_code, sn.ACCEPTED, "SUBACK")
    check_equal(c.publish("sn6/t", b"v6", 1), sn.ACCEPTED, "PUBACK")
    got = c.wait_messages(1)[0]
    check_equal((got.topic, got.payload, got.qos), ("sn6/t", b"v6", 1), "delivery")
    peer_event(ctx, c, "publish")


@case("connect rejected without anonymous", needs="auth", only="vigil")
def t_connect_rejected(ctx):
    c = sn_client(ctx, "r")
    check_equal(c.connect(), sn.NOT_SUPPORTED, "CONNACK return code")
    ev = peer_event(ctx, c, "auth_failure")
    check_equal(ev.get("proto"), "mqtt-sn", "event protocol")
    # Without a connection, a PUBLISH gets DISCONNECT.
    c.send(sn.publish(1, b"x", 1, 1))
    check_equal(c.expect(sn.DISCONNECT).type, sn.DISCONNECT, "reply")


@case("anonymous may not use a device id", only="vigil")
def t_anonymous_device_id(ctx):
    c = sn_client(ctx, "dev")
    ctx.broker.add_dtls_device(c.client_id)
    check_equal(c.connect(), sn.NOT_SUPPORTED, "CONNACK return code")
    ev = peer_event(ctx, c, "auth_failure", rule="vigil-identity")
    check_equal(ev.get("device", ""), "", "no device identity")


@case("qos -1 rejected without anonymous", needs="auth", only="vigil")
def t_qos_minus_one_rejected(ctx):
    c = sn_client(ctx, "q")
    c.send(sn.publish(1, b"nope", 0, -1, topic_type=sn.PREDEFINED))
    check_equal(c.silence(1.0), [], "replies to QoS -1")
    peer_event(ctx, c, "auth_failure")
    peer = local_peer(c)
    check_equal([e for e in ctx.broker.events()[ctx.events_before:]
                 if e.get("type") == "publish" and e.get("peer") == peer], [], "publish events")


# -- client to gateway -------------------------------------------------------

@case("publish qos 0 1 2 reaches mqtt", only="vigil")
def t_publish_to_mqtt(ctx):
    m = paho(ctx, "m")
    m.subscribe(f"{ctx.prefix}/#", 2)
    c = connected(ctx, "p")
    topic = f"{ctx.prefix}/vitals"
    tid, code = c.register(topic)
    check_equal(code, sn.ACCEPTED, "REGACK return code")
    check(tid > 0, "REGACK topic id")
    check_equal(c.register(topic)[0], tid, "same id for the same name")
    for qos in (0, 1, 2):
        check_equal(c.publish(topic, f"q{qos}", qos), None if qos == 0 else sn.ACCEPTED,
                    f"QoS {qos} acknowledgement")
        got = m.recv()
        check_equal((got.topic, got.payload, got.qos), (topic, f"q{qos}".encode(), qos),
                    f"MQTT delivery of QoS {qos}")
    peer_event(ctx, c, "publish")


@case("qos 2 duplicate delivered once", only="vigil")
def t_qos2_duplicate(ctx):
    m = paho(ctx, "m")
    m.subscribe(f"{ctx.prefix}/#", 2)
    c = connected(ctx, "d")
    tid = c.register(f"{ctx.prefix}/dup")[0]
    c.send(sn.publish(tid, b"once", 77, 2))
    check_equal(c.expect(sn.PUBREC).msg_id, 77, "PUBREC MsgId")
    c.send(sn.publish(tid, b"once", 77, 2, dup=True))
    check_equal(c.expect(sn.PUBREC).msg_id, 77, "PUBREC for the retransmission")
    c.send(sn.msg_id_only(sn.PUBREL, 77))
    check_equal(c.expect(sn.PUBCOMP).msg_id, 77, "PUBCOMP MsgId")
    check_equal(m.recv().payload, b"once", "first delivery")
    m.expect_nothing(1.0)


@case("publish to unknown topic id", only="vigil")
def t_unknown_topic_id(ctx):
    c = connected(ctx, "u")
    c.send(sn.publish(4242, b"x", 9, 1))
    ack = c.expect(sn.PUBACK)
    check_equal((ack.topic_id, ack.msg_id, ack.return_code), (4242, 9, sn.INVALID_TOPIC_ID),
                "PUBACK")
    peer_event(ctx, c, "malformed", "MQTT-SN-1.2:6.6")


@case("predefined topic ids", only="vigil")
def t_predefined(ctx):
    m = paho(ctx, "m")
    m.subscribe("sn/pre/#", 1)
    c = connected(ctx, "pd")
    sub = c.subscribe(1, 1, sn.PREDEFINED)
    check_equal((sub.return_code, sub.topic_id), (sn.ACCEPTED, 1), "SUBACK for id 1")
    check_equal(c.publish(1, b"pre", 1, topic_type=sn.PREDEFINED), sn.ACCEPTED, "PUBACK")
    got = m.recv()
    check_equal((got.topic, got.payload), ("sn/pre/one", b"pre"), "MQTT delivery")
    back = c.wait_messages(1)[0]
    check_equal((back.topic_type, back.topic_id, back.payload), (sn.PREDEFINED, 1, b"pre"),
                "delivery by predefined id")
    check_equal(c.publish(99, b"x", 1, topic_type=sn.PREDEFINED), sn.INVALID_TOPIC_ID,
                "PUBACK for an unknown predefined id")
    peer_event(ctx, c, "malformed", "MQTT-SN-1.2:6.7")
    check_equal(c.subscribe(99, 0, sn.PREDEFINED).return_code, sn.INVALID_TOPIC_ID,
                "SUBACK for an unknown predefined id")
    # "%d" needs a device id, which an anonymous client has not.
    check_equal(c.publish(2, b"x", 1, topic_type=sn.PREDEFINED), sn.INVALID_TOPIC_ID,
                "PUBACK for a device topic of an anonymous client")


@case("short topic names", only="vigil")
def t_short_names(ctx):
    m = paho(ctx, "m")
    m.subscribe("zq", 1)
    c = connected(ctx, "sh")
    sub = c.subscribe("zq", 2, sn.SHORT)
    check_equal((sub.return_code, sub.qos), (sn.ACCEPTED, 2), "SUBACK")
    check_equal(c.publish("zq", b"short", 2, topic_type=sn.SHORT), sn.ACCEPTED, "QoS 2 done")
    check_equal(m.recv().topic, "zq", "MQTT topic")
    back = c.wait_messages(1)[0]
    check_equal((back.topic_type, back.topic, back.qos), (sn.SHORT, "zq", 2), "delivery")


@case("qos -1 without connection", only="vigil")
def t_qos_minus_one(ctx):
    m = paho(ctx, "m")
    m.subscribe("sn/pre/#")
    m.subscribe("qm")
    c = sn_client(ctx, "q")
    c.send(sn.publish(513, b"alarm", 0, -1, topic_type=sn.PREDEFINED))
    c.send(sn.publish(sn.short_id("qm"), b"short", 0, -1, topic_type=sn.SHORT))
    got = sorted((x.topic, x.payload) for x in m.recv_all(2))
    check_equal(got, [("qm", b"short"), ("sn/pre/alarms", b"alarm")], "MQTT deliveries")
    check_equal(c.silence(0.5), [], "replies to QoS -1")
    # A connected client may use QoS -1 too; it is published as QoS 0.
    c2 = connected(ctx, "q2")
    c2.publish("qm", b"connected", -1, topic_type=sn.SHORT)
    check_equal((m.recv().payload, c2.silence(0.5)), (b"connected", []), "QoS -1 connected")


@case("long length form both ways", only="vigil")
def t_long_length(ctx):
    m = paho(ctx, "m")
    topic = f"{ctx.prefix}/big"
    m.subscribe(topic, 1)
    c = connected(ctx, "l")
    c.subscribe(topic, 1)
    body = bytes(range(256)) * 2
    tid = c.register(topic)[0]
    c.send(sn.publish(tid, body, 5, 1))
    check(c.sent_log[-1][0] == 1, "client used the 3-byte Length")
    check_equal(c.expect(sn.PUBACK).return_code, sn.ACCEPTED, "PUBACK")
    check_equal(m.recv().payload, body, "MQTT payload")
    c.wait_messages(1)
    pub = [x for x in c.received_log if x.type == sn.PUBLISH][-1]
    check(pub.long_form, "gateway used the 3-byte Length")
    check_equal(pub.data, body, "payload back")
    # A short message goes out in the 1-byte form.
    m.publish(topic, b"small", 1)
    c.wait_messages(2)
    pub = [x for x in c.received_log if x.type == sn.PUBLISH][-1]
    check(not pub.long_form, "1-byte Length for a small message")


# -- gateway to client -------------------------------------------------------

@case("mqtt publish reaches sn at each qos", only="vigil")
def t_deliver_qos(ctx):
    c = connected(ctx, "r")
    base = f"{ctx.prefix}/down"
    for qos in (0, 1, 2):
        check_equal(c.subscribe(f"{base}/{qos}", qos).return_code, sn.ACCEPTED, "SUBACK")
    m = paho(ctx, "m")
    for qos in (0, 1, 2):
        m.publish(f"{base}/{qos}", f"m{qos}", 2)
    got = c.wait_messages(3)
    check_equal(sorted((x.topic, x.payload, x.qos) for x in got),
                [(f"{base}/{q}", f"m{q}".encode(), q) for q in (0, 1, 2)], "deliveries")
    check_equal([x.type for x in c.received_log if x.type == sn.REGISTER], [],
                "no REGISTER for topics whose ids SUBACK returned")


@case("wildcard subscription registers topics", only="vigil")
def t_wildcard(ctx):
    c = connected(ctx, "w")
    base = f"{ctx.prefix}/ward"
    sub = c.subscribe(f"{base}/#", 1)
    check_equal((sub.return_code, sub.topic_id), (sn.ACCEPTED, 0), "SUBACK with topic id 0")
    m = paho(ctx, "m")
    for name in ("a", "b", "a"):
        m.publish(f"{base}/{name}", name, 1)
    got = c.wait_messages(3)
    check_equal([x.topic for x in got], [f"{base}/a", f"{base}/b", f"{base}/a"], "topics")
    regs = [x for x in c.received_log if x.type == sn.REGISTER]
    check_equal(len(regs), 2, "one REGISTER per concrete topic")
    check(regs[0].topic_id != regs[1].topic_id, "distinct topic ids")


@case("retained message after suback", only="vigil")
def t_retained(ctx):
    m = paho(ctx, "m")
    topic = f"{ctx.prefix}/kept"
    m.publish(topic, b"kept", 1, retain=True)
    c = connected(ctx, "k")
    sub = c.subscribe(topic, 1)
    types = [x.type for x in c.received_log]
    check(types.index(sn.SUBACK) < types.index(sn.PUBLISH) if sn.PUBLISH in types else True,
          f"SUBACK before the retained PUBLISH: {types}")
    got = c.wait_messages(1)[0]
    check_equal((got.payload, got.retain, got.topic_id), (b"kept", True, sub.topic_id),
                "retained delivery")
    m.publish(topic, b"", 1, retain=True)


@case("unsubscribe stops deliveries", only="vigil")
def t_unsubscribe(ctx):
    c = connected(ctx, "un")
    topic = f"{ctx.prefix}/x"
    c.subscribe(topic, 0)
    check_equal(c.unsubscribe(topic).type, sn.UNSUBACK, "UNSUBACK")
    check_equal(c.unsubscribe("zz", sn.SHORT).type, sn.UNSUBACK, "UNSUBACK of a short name")
    m = paho(ctx, "m")
    m.publish(topic, b"gone", 1)
    check_equal(c.silence(1.0), [], "replies")
    check_equal(c.messages, [], "deliveries after UNSUBSCRIBE")
    peer_event(ctx, c, "unsubscribe")


@case("gateway retransmits with dup", only="vigil")
def t_retransmit(ctx):
    c = connected(ctx, "rt", auto_ack=False)
    topic = f"{ctx.prefix}/rt"
    tid = c.subscribe(topic, 1).topic_id
    m = paho(ctx, "m")
    m.publish(topic, b"again", 1)
    first = c.expect(sn.PUBLISH)
    check(not first.dup, "first PUBLISH without DUP")
    start = time.monotonic()
    second = c.expect(sn.PUBLISH, timeout=15)
    waited = time.monotonic() - start
    check(8 <= waited <= 13, f"retransmission after about 10 s, not {waited:.1f} s")
    check_equal((second.dup, second.msg_id, second.topic_id), (True, first.msg_id, tid),
                "retransmitted PUBLISH")
    c.send(sn.puback(tid, second.msg_id))
    c.send(sn.pingreq())
    check_equal(c.expect(sn.PINGRESP).type, sn.PINGRESP, "still connected")


@case("unacknowledged delivery loses client", only="vigil")
def t_retransmit_lost(ctx):
    m = paho(ctx, "m")
    m.subscribe(f"{ctx.prefix}/will", 1)
    c = sn_client(ctx, "lost", auto_ack=False)
    c.connect(600, will=(f"{ctx.prefix}/will", b"gone", 1, False))
    topic = f"{ctx.prefix}/rt"
    c.subscribe(topic, 1)
    m.publish(topic, b"again", 1)
    deadline = time.monotonic() + 45
    will = None
    while time.monotonic() < deadline and will is None:
        c.recv(1.0)
        try:
            will = m.recv(0.1)
        except AssertionError:
            pass
    check(will is not None and will.payload == b"gone", "will after the last retransmission")
    pubs = [x for x in c.received_log if x.type == sn.PUBLISH]
    check_equal(len(pubs), 3, "PUBLISH sent N_retry = 3 times")
    check_equal(peer_event(ctx, c, "disconnect")["detail"],
                "no acknowledgement after retransmissions", "reason")


# -- keep-alive and will -----------------------------------------------------

@case("keep-alive loss publishes will", only="vigil")
def t_keepalive_will(ctx):
    m = paho(ctx, "m")
    wt = f"{ctx.prefix}/will"
    m.subscribe(wt, 1)
    c = sn_client(ctx, "ka")
    check_equal(c.connect(1, will=(wt, b"lost", 1, False)), sn.ACCEPTED, "CONNACK")
    requests = [x.type for x in c.received_log]
    check_equal(requests, [sn.WILLTOPICREQ, sn.WILLMSGREQ, sn.CONNACK], "will exchange")
    start = time.monotonic()
    will = m.recv(5)
    waited = time.monotonic() - start
    check_equal((will.topic, will.payload, will.qos), (wt, b"lost", 1), "will message")
    check(1.4 <= waited <= 3.0, f"lost after 1.5 x keep-alive, not {waited:.1f} s")
    check_equal(peer_event(ctx, c, "disconnect")["detail"], "keep-alive timeout", "reason")
    # The peer is gone: its next message needs a new connection.
    c.send(sn.pingreq())
    check_equal(c.expect(sn.DISCONNECT).type, sn.DISCONNECT, "reply")


@case("pingreq keeps client alive", only="vigil")
def t_ping_alive(ctx):
    m = paho(ctx, "m")
    wt = f"{ctx.prefix}/will"
    m.subscribe(wt, 1)
    c = sn_client(ctx, "pa")
    c.connect(1, will=(wt, b"lost", 0, False))
    for _ in range(6):
        time.sleep(0.5)
        c.ping()
    m.expect_nothing(0.1)
    c.disconnect()
    m.expect_nothing(2.0)


@case("will topic and message update", only="vigil")
def t_will_update(ctx):
    m = paho(ctx, "m")
    m.subscribe(f"{ctx.prefix}/#", 1)
    c = sn_client(ctx, "wu")
    c.connect(1, will=(f"{ctx.prefix}/old", b"old", 0, False))
    check_equal(c.update_will_topic(f"{ctx.prefix}/new", 1, False), sn.ACCEPTED,
                "WILLTOPICRESP")
    check_equal(c.update_will_msg(b"new"), sn.ACCEPTED, "WILLMSGRESP")
    check_equal(c.update_will_topic("bad/#"), sn.NOT_SUPPORTED, "WILLTOPICRESP for a filter")
    will = m.recv(5)
    check_equal((will.topic, will.payload, will.qos), (f"{ctx.prefix}/new", b"new", 1),
                "updated will")


@case("empty will update removes will", only="vigil")
def t_will_removed(ctx):
    m = paho(ctx, "m")
    m.subscribe(f"{ctx.prefix}/#", 1)
    c = sn_client(ctx, "wr")
    c.connect(1, will=(f"{ctx.prefix}/w", b"w", 0, False))
    check_equal(c.update_will_topic(None), sn.ACCEPTED, "WILLTOPICRESP")
    peer_event(ctx, c, "disconnect", timeout=5)
    m.expect_nothing(0.5)


@case("disconnect sends no will", only="vigil")
def t_disconnect_no_will(ctx):
    m = paho(ctx, "m")
    m.subscribe(f"{ctx.prefix}/#", 1)
    c = sn_client(ctx, "dn")
    c.connect(1, will=(f"{ctx.prefix}/w", b"w", 0, False))
    c.disconnect()
    m.expect_nothing(2.5)


# -- sleeping clients --------------------------------------------------------

@case("sleeping client gets buffered messages", only="vigil")
def t_sleep_wake(ctx):
    c = connected(ctx, "z")
    base = f"{ctx.prefix}/sleep"
    c.subscribe(f"{base}/#", 2)
    reply = c.sleep(10)
    check_equal(reply.duration, None, "DISCONNECT reply")
    m = paho(ctx, "m")
    m.publish(f"{base}/a", b"1", 1)
    m.publish(f"{base}/b", b"2", 2)
    m.publish(f"{base}/a", b"3", 0)
    check_equal(c.silence(1.0), [], "nothing sent while asleep")
    check_equal(c.messages, [], "no delivery while asleep")
    c.wake()
    check_equal([(x.topic, x.payload) for x in c.messages],
                [(f"{base}/a", b"1"), (f"{base}/b", b"2"), (f"{base}/a", b"3")],
                "buffered messages before PINGRESP")
    types = [x.type for x in c.received_log]
    check_equal(types[-1], sn.PINGRESP, "PINGRESP ends the transfer")
    check_equal(types.count(sn.REGISTER), 2, "REGISTER before each new topic")
    # Asleep again: the next message waits for the next wake-up.
    m.publish(f"{base}/b", b"4", 1)
    check_equal(c.silence(0.7), [], "asleep after PINGRESP")
    c.wake()
    check_equal(c.messages[-1].payload, b"4", "second wake-up")


@case("sleep queue drops oldest", only="vigil")
def t_sleep_queue(ctx):
    c = connected(ctx, "zq")
    topic = f"{ctx.prefix}/q"
    c.subscribe(topic, 1)
    c.sleep(10)
    m = paho(ctx, "m")
    for i in range(SLEEP_QUEUE + 3):
        m.publish(topic, f"{i}", 1)
    time.sleep(0.5)
    c.wake()
    check_equal([x.payload.decode() for x in c.messages],
                [str(i) for i in range(3, SLEEP_QUEUE + 3)], "newest messages kept")
    ev = peer_event(ctx, c, "limit")
    check("mqttsn_sleep_queue" in ev.get("detail", ""), f"limit event detail: {ev}")


@case("oversize messages not queued for sleeper", only="vigil")
def t_sleep_oversize(ctx):
    c = connected(ctx, "zo")
    topic = f"{ctx.prefix}/big"
    c.subscribe(topic, 1)
    c.sleep(10)
    m = paho(ctx, "m")
    m.publish(topic, b"small", 1)
    # A PUBLISH carries at most 65535 - 9 bytes of payload, so these can
    # never be delivered and must not push the small one out of the queue.
    for _ in range(SLEEP_QUEUE + 1):
        m.publish(topic, b"x" * 70000, 1)
    time.sleep(0.5)
    c.wake()
    check_equal([x.payload for x in c.messages], [b"small"], "deliverable message kept")
    ev = peer_event(ctx, c, "limit")
    check_equal(ev.get("detail"), "message too large for one MQTT-SN datagram", "limit detail")
    check_equal(ev.get("topic"), topic, "limit event topic")


@case("missed sleep deadline publishes will", only="vigil")
def t_sleep_lost(ctx):
    m = paho(ctx, "m")
    wt = f"{ctx.prefix}/will"
    m.subscribe(wt, 1)
    c = sn_client(ctx, "zl")
    c.connect(60, will=(wt, b"slept away", 0, False))
    c.sleep(1)
    will = m.recv(5)
    check_equal(will.payload, b"slept away", "will")
    check_equal(peer_event(ctx, c, "disconnect")["detail"], "sleep duration exceeded", "reason")


@case("connect returns sleeper to active", only="vigil")
def t_sleep_connect(ctx):
    c = connected(ctx, "zc")
    topic = f"{ctx.prefix}/t"
    c.subscribe(topic, 1)
    c.sleep(10)
    m = paho(ctx, "m")
    m.publish(topic, b"waiting", 1)
    check_equal(c.silence(0.5), [], "asleep")
    check_equal(c.connect(60, clean=False), sn.ACCEPTED, "CONNACK")
    check_equal(c.wait_messages(1)[0].payload, b"waiting", "buffered message after CONNECT")
    m.publish(topic, b"live", 0)
    check_equal(c.wait_messages(2)[1].payload, b"live", "active again")


# -- DTLS --------------------------------------------------------------------

def dtls_device(ctx, name):
    dev = f"{ctx.prefix}-{name}"
    cert, key, psk = ctx.broker.add_dtls_device(dev)
    return dev, cert, key, psk


def relay_client(ctx, relay, name):
    ctx.defer(relay.close)
    c = sn.Client("127.0.0.1", relay.port, name, log=ctx.log)
    ctx.defer(c.close)
    return c


@case("dtls psk device publishes", needs="dtls", only="vigil")
def t_dtls_psk(ctx):
    dev, _, _, psk = dtls_device(ctx, "psk")
    m = paho(ctx, "m")
    m.subscribe(f"+/+/+/{dev}/#", 1)
    relay = Relay(ctx, ctx.broker.dtls_port, psk=(dev, psk))
    check("handshake ok DTLSv1.2" in relay.handshake, f"DTLS 1.2: {relay.handshake}")
    c = relay_client(ctx, relay, dev)
    check_equal(c.connect(30), sn.ACCEPTED, "CONNACK")
    topic = f"north/icu3/room1/{dev}/heart_rate"
    check_equal(c.publish(topic, b"72", 1), sn.ACCEPTED, "PUBACK")
    got = m.recv()
    check_equal((got.topic, got.payload), (topic, b"72"), "MQTT delivery")
    ev = wait_event(ctx, lambda e: e.get("type") == "auth_success" and e.get("device") == dev,
                    "auth_success of the device")
    check_equal(ev.get("proto"), "mqtt-sn", "protocol")
    # Predefined "%d" topics expand to the device id.
    check_equal(c.publish(2, b"pre", 1, topic_type=sn.PREDEFINED), sn.NOT_SUPPORTED,
                "PUBACK for hospital/<device>/pre outside the device's subtree")
    c.disconnect()


@case("dtls certificate device and acl", needs="dtls", only="vigil")
def t_dtls_cert(ctx):
    dev, cert, key, _ = dtls_device(ctx, "crt")
    relay = Relay(ctx, ctx.broker.dtls_port, cert=(cert, key), ca=ctx.broker.ca_file)
    c = relay_client(ctx, relay, dev)
    check_equal(c.connect(30), sn.ACCEPTED, "CONNACK")
    own = f"north/icu3/room2/{dev}/spo2"
    check_equal(c.subscribe(own, 1).return_code, sn.ACCEPTED, "own subtree")
    check_equal(c.publish(own, b"97", 1), sn.ACCEPTED, "PUBACK")
    check_equal(c.wait_messages(1)[0].payload, b"97", "own message back")
    other = "north/icu3/room2/someone-else/spo2"
    check_equal(c.subscribe(other, 1).return_code, sn.NOT_SUPPORTED, "SUBACK for another device")
    wait_event(ctx, lambda e: e.get("type") == "acl_deny" and e.get("device") == dev and
               e.get("topic") == other, "acl_deny")
    check_equal(c.publish(other, b"1", 1), sn.NOT_SUPPORTED, "PUBACK for another device")


@case("dtls unknown psk identity fails", needs="dtls", only="vigil")
def t_dtls_bad_psk(ctx):
    relay = Relay(ctx, ctx.broker.dtls_port, psk=("nobody", "00112233"), expect_ok=False)
    ctx.defer(relay.close)
    check(relay.port is None, "no session for an unknown PSK identity")
    check_equal(relay.proc.returncode, 1, "relay exit status")


@case("removed device is disconnected", needs="dtls", only="vigil")
def t_dtls_revoked(ctx):
    dev, _, _, psk = dtls_device(ctx, "rm")
    relay = Relay(ctx, ctx.broker.dtls_port, psk=(dev, psk))
    c = relay_client(ctx, relay, dev)
    check_equal(c.connect(30), sn.ACCEPTED, "CONNACK")
    ctx.broker.remove_device(dev)
    check_equal(c.expect(sn.DISCONNECT, timeout=10).type, sn.DISCONNECT, "DISCONNECT")
    wait_event(ctx, lambda e: e.get("type") == "cert" and e.get("device") == dev, "cert")


def reconnect_with_session(ctx, dev, **credentials):
    """Connect twice through the DTLS listener, the second time offering the
    session saved after the first handshake, and publish each time. Return
    both relays and the auth_success events of dev."""
    m = paho(ctx, "m")
    m.subscribe(f"+/+/+/{dev}/#", 1)
    saved = os.path.join(ctx.broker.workdir, f"{dev}.session.pem")
    topic = f"north/icu3/room4/{dev}/heart_rate"
    relays = []

    for attempt, files in enumerate(({"session_out": saved}, {"session_in": saved})):
        relay = Relay(ctx, ctx.broker.dtls_port, **credentials, **files)
        relays.append(relay)
        c = relay_client(ctx, relay, dev)
        check_equal(c.connect(30), sn.ACCEPTED, f"CONNACK of connection {attempt + 1}")
        payload = f"7{attempt}".encode()
        check_equal(c.publish(topic, payload, 1), sn.ACCEPTED, f"PUBACK of connection {attempt + 1}")
        got = m.recv()
        check_equal((got.topic, got.payload), (topic, payload),
                    f"MQTT delivery from connection {attempt + 1}")
        c.disconnect()
        # Closing stdin makes the relay send close_notify, which keeps the
        # session resumable on both sides.
        relay.close()
        check_equal(relay.proc.returncode, 0, f"relay exit status of connection {attempt + 1}")

    logins = ctx.broker.wait_events(
        lambda es: len([e for e in es[ctx.events_before:]
                        if e.get("type") == "auth_success" and e.get("device") == dev]) >= 2)
    check(logins is not None, "two auth_success events of the device")
    logins = [e for e in logins[ctx.events_before:]
              if e.get("type") == "auth_success" and e.get("device") == dev]
    return relays, logins


def check_session_resumed(relays, logins, dev):
    """Check a full handshake, then a resumed one, each logging dev in once."""
    check(not relays[0].resumed, f"first handshake is a full one: {relays[0].handshake}")
    check(relays[1].resumed, f"second handshake resumed the session: {relays[1].handshake}")
    check_equal(len(logins), 2, "auth_success events of the device")
    check_equal([e.get("client_id") for e in logins], [dev, dev], "client ids")
    check(logins[0].get("peer") != logins[1].get("peer"),
          f"each connection from its own source port: {logins[0].get('peer')}")
    check_equal(logins[1].get("detail"), logins[0].get("detail"), "role of both logins")


@case("dtls psk session resumed", needs="dtls", only="vigil")
def t_dtls_psk_resumed(ctx):
    dev, _, _, psk = dtls_device(ctx, "rp")
    relays, logins = reconnect_with_session(ctx, dev, psk=(dev, psk))
    check_session_resumed(relays, logins, dev)
    check_equal(relays[1].handshake.split()[3], relays[0].handshake.split()[3],
                "cipher suite of the resumed session")
    check_equal([e.get("proto") for e in logins], ["mqtt-sn", "mqtt-sn"], "protocols")


@case("dtls certificate session resumed", needs="dtls", only="vigil")
def t_dtls_cert_resumed(ctx):
    dev, cert, key, _ = dtls_device(ctx, "rc")
    relays, logins = reconnect_with_session(ctx, dev, cert=(cert, key), ca=ctx.broker.ca_file)
    check_session_resumed(relays, logins, dev)
    check("PSK" not in relays[1].handshake, f"certificate suite: {relays[1].handshake}")


@case("sleeping sn client gets mqtt publish over dtls", needs="dtls", only="vigil")
def t_dtls_sleep(ctx):
    dev, _, _, psk = dtls_device(ctx, "zz")
    relay = Relay(ctx, ctx.broker.dtls_port, psk=(dev, psk))
    c = relay_client(ctx, relay, dev)
    c.connect(30)
    topic = f"north/icu3/room3/{dev}/cmd"
    c.subscribe(topic, 1)
    c.sleep(10)
    m = paho(ctx, "m")
    m.publish(topic, b"wake up", 1)
    check_equal(c.silence(0.5), [], "asleep")
    c.wake()
    check_equal(c.messages[0].payload, b"wake up", "buffered over DTLS")


if __name__ == "__main__":
    sys.exit(harness.run("mqttsn", Fixture))
