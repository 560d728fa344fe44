#!/usr/bin/python3
"""End-to-end tests of vigil's CoAP front end with real clients.

libcoap's coap-client (coap-client-notls and coap-client-openssl from
Debian's libcoap3-bin 4.3.1) sends GET, PUT, POST and DELETE, observes
with -s, transfers blocks with -b and large -f bodies, and speaks DTLS
with a PSK (-k/-u) or a device certificate (-c/-j/-C). The npm coap
package (tests/e2e/node/coap.mjs) is the second client. paho on the MQTT
listener checks that CoAP publishes reach MQTT subscribers in the SenML
JSON form of `vigil sim`, and that MQTT publishes reach CoAP observers.
Each case checks the client's output and the events in events.jsonl.

Usage: /usr/bin/python3 tests/e2e/coap/run.py [NAME-SUBSTRING...]
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import coapbroker  # noqa: E402  (puts tests/lib on the path)
import harness  # noqa: E402
import pahoclient  # noqa: E402
from broker import SANITIZER_PATTERNS, vigil_binary  # noqa: E402
from coapbroker import (CLIENT_NOTLS, IDLE_S, MAX_BODY, CoapBroker, coap_client,  # noqa: E402
                        finish, start_coap_client)
from netns import Netns  # noqa: E402
from harness import case, check, check_equal  # noqa: E402

ROOT = coapbroker.ROOT
PSK_DEVICE = "mon-0001"
CERT_DEVICE = "mon-0002"
REVOKED_DEVICE = "mon-0003"
OTHER_UNIT_DEVICE = "pump-0004"


def device_topic(device, metric, unit="icu3", dev_type="bedside-monitor"):
    return f"hospital/{unit}/{dev_type}/{device}/{metric}"


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.broker = None
        self.certs = {}
        self.psk = None

    def before(self, c, ctx):
        ctx.log_dir = self.log_dir
        # These cases start vigil on its default ports in a namespace.
        if c.needs == "netns":
            ctx.broker = None
            return
        if self.broker is None or not self.broker.alive():
            self.broker = CoapBroker(self.log_dir, name="coap-e2e")
            self.broker.start()
            self.psk = self.broker.add_coap_device(PSK_DEVICE, psk=True)[2]
            for device in (CERT_DEVICE, REVOKED_DEVICE):
                self.certs[device] = self.broker.add_coap_device(device)[:2]
            self.certs[OTHER_UNIT_DEVICE] = self.broker.add_coap_device(
                OTHER_UNIT_DEVICE, dev_type="infusion-pump", unit="ward2")[:2]
        ctx.broker = self.broker
        ctx.certs = self.certs
        ctx.psk = self.psk
        ctx.events_before = len(self.broker.events())

    def after(self, c, ctx):
        if ctx.broker is not None:
            self.broker.check_alive()

    def on_failure(self, c, ctx, exc):
        if ctx.broker is not None:
            ctx.log("broker stderr tail:\n" + self.broker.stderr_tail())

    def close(self):
        if self.broker is not None:
            self.broker.stop()


# -- helpers ------------------------------------------------------------


def uri(ctx, path, v6=False, dtls=False, closed=False):
    b = ctx.broker
    if dtls:
        return f"coaps://[::1]:{b.dtls_port6}{path}" if v6 else f"coaps://127.0.0.1:{b.dtls_port}{path}"
    if closed:
        return f"coap://127.0.0.1:{b.closed_port}{path}"
    return f"coap://[::1]:{b.coap_port6}{path}" if v6 else f"coap://127.0.0.1:{b.coap_port}{path}"


def psk_args(ctx):
    return ["-k", ctx.psk, "-u", PSK_DEVICE]


def cert_args(ctx, device=CERT_DEVICE):
    cert, key = ctx.certs[device]
    return ["-c", cert, "-j", key, "-C", ctx.broker.ca_file]


def new_events(ctx):
    return ctx.broker.events()[ctx.events_before:]


def wait_event(ctx, what, pred, timeout=5.0):
    """Wait for an event of this case matching pred; return it."""
    found = []

    def match(evs):
        found[:] = [e for e in evs[ctx.events_before:] if pred(e)]
        return bool(found)
    if ctx.broker.wait_events(match, timeout) is None:
        ctx.log("events of the case:", json.dumps(new_events(ctx), indent=1))
        raise AssertionError(f"no {what} event in events.jsonl")
    ctx.log("event:", found[0])
    return found[0]


def coap_event(ctx, ev_type, **fields):
    def pred(e):
        if e.get("type") != ev_type or e.get("proto") != "coap":
            return False
        return all(e.get(k) == v for k, v in fields.items())
    return wait_event(ctx, f"{ev_type} {fields}", pred)


def mqtt_client(ctx, name, v6=False):
    if v6:
        cl = pahoclient.Client(ctx, ctx.broker.port6, name, version=pahoclient.V311, host="::1")
    else:
        cl = pahoclient.Client(ctx, ctx.broker.port, name, version=pahoclient.V311)
    cl.connect()
    return cl


def check_sim_shape(ctx, payload, device, metric, unit, value):
    """The SenML JSON of `vigil sim`: one record, keys in its order."""
    text = payload.decode()
    ctx.log("senml:", text)
    rec = json.loads(text)
    check_equal(len(rec), 1, "records in the pack")
    keys = list(rec[0].keys())
    want = ["bn", "bt", "n", "u", "v"] if unit is not None else ["bn", "bt", "n", "v"]
    check_equal(keys, want, "SenML keys in order")
    check_equal(rec[0]["bn"], f"{device}/", "bn")
    check_equal(rec[0]["n"], metric, "n")
    if unit is not None:
        check_equal(rec[0]["u"], unit, "u")
    check(abs(rec[0]["v"] - value) < 1e-9, f"v {rec[0]['v']} != {value}")
    check(abs(rec[0]["bt"] - time.time()) < 60, f"bt {rec[0]['bt']} is not about now")
    return rec[0]


# -- resource discovery and /ps/ ----------------------------------------


@case("well-known core lists resources")
def well_known(ctx):
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/.well-known/core")])
    check('</t>;ct="110 112"' in res.text, f"no </t> link in {res.text!r}")
    check('</ps>;rt="core.ps"' in res.text, f"no </ps> link in {res.text!r}")
    check("</t/heart_rate>;obs" in res.text, f"no </t/heart_rate> link in {res.text!r}")
    coap_event(ctx, "auth_success", detail="anonymous")


@case("ps put get delete anonymous")
def ps_put_get(ctx):
    res = coap_client(ctx, ["-m", "put", "-e", "hello coap", uri(ctx, "/ps/e2e/ps1")])
    check_equal(res.out, b"", "PUT output")
    coap_event(ctx, "publish", topic="e2e/ps1", retain=True, qos=1)
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/ps/e2e/ps1")])
    check_equal(res.out, b"hello coap", "GET payload")
    # POST publishes without retaining: GET still returns the PUT.
    res = coap_client(ctx, ["-m", "post", "-e", "not kept", uri(ctx, "/ps/e2e/ps1")])
    coap_event(ctx, "publish", topic="e2e/ps1", retain=False, qos=1)
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/ps/e2e/ps1")])
    check_equal(res.out, b"hello coap", "GET payload after POST")
    res = coap_client(ctx, ["-m", "delete", uri(ctx, "/ps/e2e/ps1")])
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/ps/e2e/ps1")])
    check("4.04" in res.both, f"GET after DELETE: {res.both!r}")


@case("ps non confirmable")
def ps_non(ctx):
    coap_client(ctx, ["-N", "-m", "put", "-e", "non", uri(ctx, "/ps/e2e/non")])
    coap_event(ctx, "publish", topic="e2e/non", qos=0)
    res = coap_client(ctx, ["-N", "-m", "get", uri(ctx, "/ps/e2e/non")])
    check_equal(res.out, b"non", "NON GET payload")


@case("errors 4.04 4.05 4.00")
def resource_errors(ctx):
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/ps/e2e/never-set")])
    check("4.04" in res.both, f"missing retained: {res.both!r}")
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/nothing/here")])
    check("4.04" in res.both, f"unknown resource: {res.both!r}")
    res = coap_client(ctx, ["-m", "delete", uri(ctx, "/.well-known/core")])
    check("4.05" in res.both, f"DELETE of /.well-known/core: {res.both!r}")
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/ps/e2e/+")])
    check("4.00" in res.both, f"GET of a filter: {res.both!r}")


@case("anonymous t forbidden")
def anonymous_t(ctx):
    res = coap_client(ctx, ["-m", "post", "-e", "72", uri(ctx, "/t/heart_rate")])
    check("4.03" in res.both and "no device identity" in res.both, f"output {res.both!r}")
    coap_event(ctx, "acl_deny", detail="no device identity for /t")


@case("no credentials 4.01")
def no_credentials(ctx):
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/ps/e2e/ps1", closed=True)])
    check("4.01" in res.both, f"output {res.both!r}")
    ev = coap_event(ctx, "auth_failure")
    check(ev.get("peer", "").startswith("127.0.0.1:"), f"peer {ev.get('peer')}")


@case("failed logins rate limited")
def rate_limited(ctx):
    broker = CoapBroker(ctx.broker.workdir, name="coap-ratelimit", auth_burst=3)
    ctx.defer(broker.stop)
    broker.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctx.defer(sock.close)
    sock.connect(("127.0.0.1", broker.closed_port))
    sock.settimeout(3)
    peer = "127.0.0.1:%d" % sock.getsockname()[1]
    for mid in range(8):
        # CON GET /ps/x with token 0x01
        sock.send(bytes([0x41, 0x01, 0, mid, 0x01, 0xB2]) + b"ps" + bytes([0x01]) + b"x")
        reply = sock.recv(2048)
        check_equal((reply[1], reply[3]), (0x81, mid), f"4.01 to request {mid}")
    time.sleep(0.5)
    evs = [e for e in broker.events() if e.get("peer") == peer]
    failures = [e for e in evs if e.get("type") == "auth_failure"]
    limits = [e for e in evs if e.get("type") == "rate_limit"]
    ctx.log("events:", evs)
    check(1 <= len(failures) < 8, f"{len(failures)} auth_failure events for 8 requests")
    check_equal(len(limits), 1, "rate_limit events")


# -- measurements over DTLS -----------------------------------------------


@case("dtls psk post reaches mqtt")
def psk_post(ctx):
    topic = device_topic(PSK_DEVICE, "heart_rate")
    sub = mqtt_client(ctx, "coap-e2e-sub1")
    sub.subscribe(topic, qos=1)
    res = coap_client(ctx, psk_args(ctx) + ["-m", "post", "-e", "72", uri(ctx, "/t/heart_rate",
                                                                       dtls=True)], dtls=True)
    check_equal(res.out, b"", "POST output")
    msg = sub.recv()
    check_equal(msg.topic, topic, "topic")
    check_equal(msg.qos, 1, "QoS of a confirmable POST")
    check_sim_shape(ctx, msg.payload, PSK_DEVICE, "heart_rate", "beat/min", 72)
    res = coap_client(ctx, psk_args(ctx) + ["-m", "get", uri(ctx, "/t/heart_rate", dtls=True)],
                      dtls=True)
    check_equal(res.out, msg.payload, "GET returns the retained measurement")
    coap_event(ctx, "auth_success", device=PSK_DEVICE)
    coap_event(ctx, "publish", device=PSK_DEVICE, topic=topic, retain=True)


@case("dtls psk non post qos 0")
def psk_non_post(ctx):
    topic = device_topic(PSK_DEVICE, "spo2")
    sub = mqtt_client(ctx, "coap-e2e-sub2")
    sub.subscribe(topic, qos=1)
    coap_client(ctx, psk_args(ctx) + ["-N", "-m", "put", "-e", "97", uri(ctx, "/t/spo2", dtls=True)],
                dtls=True)
    msg = sub.recv()
    check_equal(msg.qos, 0, "QoS of a non-confirmable PUT")
    check_sim_shape(ctx, msg.payload, PSK_DEVICE, "spo2", "/", 0.97)


@case("dtls x509 senml pack split")
def cert_pack(ctx):
    sub = mqtt_client(ctx, "coap-e2e-sub3")
    sub.subscribe(f"hospital/+/+/{CERT_DEVICE}/#", qos=1)
    pack = json.dumps([{"bn": "ignored/", "n": "temperature", "u": "Cel", "v": 36.6},
                       {"n": "resp_rate", "v": 14},
                       {"n": "nbp_sys", "u": "Pa", "v": 16000}])
    res = coap_client(ctx, cert_args(ctx) + ["-m", "post", "-t", "110", "-e", pack,
                                             uri(ctx, "/t", dtls=True)], dtls=True)
    check_equal(res.out, b"", "POST output")
    got = {m.topic: m for m in sub.recv_all(3)}
    check_equal(sorted(got), sorted(device_topic(CERT_DEVICE, m)
                                    for m in ("temperature", "resp_rate", "nbp_sys")), "topics")
    check_sim_shape(ctx, got[device_topic(CERT_DEVICE, "temperature")].payload, CERT_DEVICE,
                    "temperature", "Cel", 36.6)
    # A record without a unit gets the unit `vigil sim` uses for the metric.
    check_sim_shape(ctx, got[device_topic(CERT_DEVICE, "resp_rate")].payload, CERT_DEVICE,
                    "resp_rate", "1/min", 14)
    check_sim_shape(ctx, got[device_topic(CERT_DEVICE, "nbp_sys")].payload, CERT_DEVICE,
                    "nbp_sys", "Pa", 16000)
    coap_event(ctx, "auth_success", device=CERT_DEVICE)


@case("dtls senml cbor post")
def cbor_post(ctx):
    topic = device_topic(PSK_DEVICE, "temperature")
    sub = mqtt_client(ctx, "coap-e2e-sub4")
    sub.subscribe(topic, qos=1)
    # [{0: "temperature", 1: "Cel", 2: 37.5 as a half-precision float}]
    body = bytes([0x81, 0xA3, 0x00, 0x6B]) + b"temperature" + bytes([0x01, 0x63]) + b"Cel" + \
        bytes([0x02, 0xF9, 0x50, 0xB0])
    path = os.path.join(ctx.broker.workdir, "pack.cbor")
    with open(path, "wb") as f:
        f.write(body)
    coap_client(ctx, psk_args(ctx) + ["-m", "post", "-t", "112", "-f", path,
                                   uri(ctx, "/t", dtls=True)], dtls=True)
    check_sim_shape(ctx, sub.recv().payload, PSK_DEVICE, "temperature", "Cel", 37.5)


@case("unsupported content format 4.15")
def unsupported_format(ctx):
    res = coap_client(ctx, psk_args(ctx) + ["-m", "post", "-t", "50", "-e", "{}",
                                         uri(ctx, "/t/heart_rate", dtls=True)], dtls=True)
    check("4.15" in res.both, f"output {res.both!r}")
    res = coap_client(ctx, psk_args(ctx) + ["-m", "post", "-t", "0", "-e", "abc",
                                         uri(ctx, "/t/heart_rate", dtls=True)], dtls=True)
    check("4.00" in res.both, f"non-numeric text: {res.both!r}")
    coap_event(ctx, "malformed", rule="RFC8428")


@case("acl deny other device 4.03")
def acl_deny(ctx):
    other = device_topic(CERT_DEVICE, "heart_rate")
    res = coap_client(ctx, psk_args(ctx) + ["-m", "put", "-e", "1",
                                         uri(ctx, "/ps/" + other, dtls=True)], dtls=True)
    check("4.03" in res.both, f"output {res.both!r}")
    coap_event(ctx, "acl_deny", device=PSK_DEVICE, topic=other)
    res = coap_client(ctx, psk_args(ctx) + ["-m", "get", "-s", "1",
                                         uri(ctx, "/ps/hospital/#", dtls=True)], dtls=True)
    check("4.03" in res.both, f"observe output {res.both!r}")


@case("wrong psk no response")
def wrong_psk(ctx):
    res = coap_client(ctx, ["-k", "not-the-key-of-this-device-xxxx", "-u", PSK_DEVICE,
                            "-m", "get", uri(ctx, "/t/heart_rate", dtls=True)], dtls=True)
    check_equal(res.out, b"", "payload without a DTLS session")
    check("2.0" not in res.both, f"output {res.both!r}")
    wait_event(ctx, "tls_failure", lambda e: e.get("type") == "tls_failure")


# -- observe and cross-protocol ---------------------------------------------


@case("observe gets mqtt publishes")
def observe_mqtt(ctx):
    pub = mqtt_client(ctx, "coap-e2e-pub1")
    pub.publish("e2e/obs1", b"first", qos=1, retain=True)
    proc = start_coap_client(ctx, ["-m", "get", "-s", "5", "-w", uri(ctx, "/ps/e2e/obs1")])
    coap_event(ctx, "subscribe", topic="e2e/obs1")
    pub.publish("e2e/obs1", b"second", qos=0)
    time.sleep(0.2)
    pub.publish("e2e/obs1", b"third", qos=1)
    time.sleep(0.2)
    pub.publish("e2e/obs1", b"fourth", qos=2, retain=True)
    res = finish(ctx, proc)
    check_equal(res.text.split(), ["first", "second", "third", "fourth"], "notifications")
    coap_event(ctx, "unsubscribe", topic="e2e/obs1")


@case("observe filter wildcards")
def observe_filter(ctx):
    pub = mqtt_client(ctx, "coap-e2e-pub2")
    proc = start_coap_client(ctx, ["-m", "get", "-s", "4", "-w", uri(ctx, "/ps/e2e/f/+/v")])
    proc2 = start_coap_client(ctx, ["-m", "get", "-s", "4", "-w", uri(ctx, "/ps/e2e/f/%23")])
    coap_event(ctx, "subscribe", topic="e2e/f/+/v")
    coap_event(ctx, "subscribe", topic="e2e/f/#")
    pub.publish("e2e/f/a/v", b"A", qos=0)
    time.sleep(0.1)
    pub.publish("e2e/f/b/v", b"B", qos=1)
    time.sleep(0.1)
    pub.publish("e2e/f/c", b"C", qos=1)
    res = finish(ctx, proc)
    check_equal(res.text.split(), ["A", "B"], "notifications of e2e/f/+/v")
    res = finish(ctx, proc2)
    check_equal(res.text.split(), ["A", "B", "C"], "notifications of e2e/f/#")


@case("dtls device observe own metric")
def observe_own_metric(ctx):
    proc = start_coap_client(ctx, cert_args(ctx) + ["-m", "get", "-s", "4", "-w",
                                                    uri(ctx, "/t/pulse_rate", dtls=True)],
                             dtls=True)
    coap_event(ctx, "subscribe", topic=device_topic(CERT_DEVICE, "pulse_rate"))
    coap_client(ctx, cert_args(ctx) + ["-m", "put", "-e", "64", uri(ctx, "/t/pulse_rate",
                                                                    dtls=True)], dtls=True)
    res = finish(ctx, proc)
    lines = [ln for ln in res.text.split("\n") if ln.strip()]
    check_equal(len(lines), 1, f"notifications {lines}")
    check_sim_shape(ctx, lines[0].encode(), CERT_DEVICE, "pulse_rate", "beat/min", 64)


@case("npm coap client")
def npm_coap(ctx):
    env = dict(os.environ, VIGIL_TEST_COAP_PORT=str(ctx.broker.coap_port),
               VIGIL_TEST_COAP_PORT6=str(ctx.broker.coap_port6),
               VIGIL_TEST_PORT=str(ctx.broker.port))
    cmd = ["node", os.path.join(ROOT, "tests", "e2e", "node", "coap.mjs")]
    ctx.log("run:", " ".join(cmd))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    ctx.log("stdout:", proc.stdout)
    ctx.log("stderr:", proc.stderr)
    check_equal(proc.returncode, 0, f"node exit status ({proc.stderr.strip()[-500:]})")
    for step in ("put", "get", "post", "observe"):
        check(f"ok {step}" in proc.stdout, f"node step {step} missing: {proc.stdout!r}")
    coap_event(ctx, "publish", topic="e2e/node/put", retain=True, qos=1)
    coap_event(ctx, "publish", topic="e2e/node/post", retain=False, qos=0)


# -- block-wise ---------------------------------------------------------------


def big_payload(n):
    return bytes((i * 7 + i // 251) % 94 + 33 for i in range(n))


@case("block1 put block2 get")
def blocks_both_ways(ctx):
    body = big_payload(3000)
    path = os.path.join(ctx.broker.workdir, "big.txt")
    with open(path, "wb") as f:
        f.write(body)
    sub = mqtt_client(ctx, "coap-e2e-sub5")
    sub.subscribe("e2e/big", qos=1)
    res = coap_client(ctx, ["-m", "put", "-b", "256", "-f", path, uri(ctx, "/ps/e2e/big")])
    check("4." not in res.both and "5." not in res.both, f"PUT output {res.both!r}")
    check_equal(sub.recv().payload, body, "payload reassembled from 12 blocks")
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/ps/e2e/big")])
    check_equal(res.out, body, "GET in 1024-byte blocks")
    res = coap_client(ctx, ["-m", "get", "-b", "64", uri(ctx, "/ps/e2e/big")])
    check_equal(res.out, body, "GET in 64-byte blocks")


@case("block1 too large 4.13")
def block_too_large(ctx):
    path = os.path.join(ctx.broker.workdir, "huge.txt")
    with open(path, "wb") as f:
        f.write(big_payload(MAX_BODY + 500))
    res = coap_client(ctx, ["-m", "put", "-b", "512", "-f", path, uri(ctx, "/ps/e2e/huge")])
    check("4.13" in res.both, f"output {res.both!r}")
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/ps/e2e/huge")])
    check("4.04" in res.both, f"nothing was published: {res.both!r}")


@case("block2 over dtls")
def block_dtls(ctx):
    body = big_payload(2500)
    pub = mqtt_client(ctx, "coap-e2e-pub3")
    topic = device_topic(PSK_DEVICE, "waveform")
    pub.publish(topic, body, qos=1, retain=True)
    res = coap_client(ctx, psk_args(ctx) + ["-m", "get", uri(ctx, "/ps/" + topic, dtls=True)],
                      dtls=True)
    check_equal(res.out, body, "GET over DTLS in blocks")


# -- IPv6 ---------------------------------------------------------------------


@case("ipv6 coap, coaps and mqtt")
def ipv6(ctx):
    res = coap_client(ctx, ["-m", "put", "-e", "v6", uri(ctx, "/ps/e2e/v6", v6=True)])
    ev = coap_event(ctx, "publish", topic="e2e/v6")
    check(ev.get("peer", "").startswith("[::1]:"), f"peer {ev.get('peer')}")
    res = coap_client(ctx, ["-m", "get", uri(ctx, "/ps/e2e/v6", v6=True)])
    check_equal(res.out, b"v6", "GET over IPv6")
    sub = mqtt_client(ctx, "coap-e2e-sub6", v6=True)
    mqtt_ev = wait_event(ctx, "auth_success of coap-e2e-sub6",
                         lambda e: e.get("type") == "auth_success" and
                         e.get("client_id") == "coap-e2e-sub6")
    check(mqtt_ev.get("peer", "").startswith("[::1]:"), f"MQTT peer {mqtt_ev.get('peer')}")
    sub.subscribe(device_topic(PSK_DEVICE, "resp_rate"), qos=1)
    coap_client(ctx, psk_args(ctx) + ["-m", "post", "-e", "16",
                                   uri(ctx, "/t/resp_rate", v6=True, dtls=True)], dtls=True)
    check_sim_shape(ctx, sub.recv().payload, PSK_DEVICE, "resp_rate", "1/min", 16)
    proc = start_coap_client(ctx, ["-m", "get", "-s", "3", "-w", uri(ctx, "/ps/e2e/v6", v6=True)])
    coap_event(ctx, "subscribe", topic="e2e/v6")
    mqtt_client(ctx, "coap-e2e-pub4", v6=True).publish("e2e/v6", b"v6 again", qos=1)
    check_equal(finish(ctx, proc).text.split("\n")[:2], ["v6", "v6 again"], "observe over IPv6")


# -- peer life cycle ------------------------------------------------------------


@case("revoked device peer closed")
def revoked(ctx):
    proc = start_coap_client(ctx, cert_args(ctx, REVOKED_DEVICE) + [
        "-m", "get", "-s", "8", "-w", uri(ctx, "/t/heart_rate", dtls=True)], dtls=True)
    coap_event(ctx, "subscribe", device=REVOKED_DEVICE)
    ctx.broker.remove_device(REVOKED_DEVICE)
    ev = wait_event(ctx, "disconnect", lambda e: e.get("type") == "disconnect"
                    and e.get("device") == REVOKED_DEVICE, timeout=10)
    check_equal(ev.get("detail"), "identity revoked", "disconnect detail")
    wait_event(ctx, "cert", lambda e: e.get("type") == "cert" and e.get("device") == REVOKED_DEVICE)
    proc.kill()
    finish(ctx, proc)


@case("idle peer released")
def idle_release(ctx):
    coap_client(ctx, ["-m", "get", uri(ctx, "/ps/e2e/idle")])
    ev = coap_event(ctx, "auth_success", detail="anonymous")
    peer = ev["peer"]
    started = time.monotonic()
    ev = wait_event(ctx, "disconnect", lambda e: e.get("type") == "disconnect"
                    and e.get("peer") == peer, timeout=IDLE_S + 5)
    elapsed = time.monotonic() - started
    check_equal(ev.get("detail"), "idle", "disconnect detail")
    check(elapsed >= IDLE_S - 2, f"released after {elapsed:.1f} s, before coap_idle")


# -- the default listeners of `vigil serve` ------------------------------------
# vigil binds its fixed default ports here, so each case runs it and its
# clients in a network namespace of its own (tests/lib/netns.py), where no
# other suite or service uses those ports.


class DefaultVigil:
    """`vigil serve --data-dir DIR [ARGS]` without listener options in ns."""

    def __init__(self, ctx, ns, args=()):
        self.ctx = ctx
        self.ns = ns
        self.workdir = tempfile.mkdtemp(prefix="coap-defaults-", dir=ctx.log_dir)
        self.data_dir = os.path.join(self.workdir, "data")
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        cmd = [vigil_binary(), "serve", "--data-dir", self.data_dir] + list(args)
        ctx.log("start in the namespace:", " ".join(cmd))
        with open(self.stderr_path, "wb") as err:
            self.proc = ns.popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        ctx.defer(self.stop)

    def log(self):
        with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_started(self, timeout=60):
        """Wait for "vigil started"; return False if vigil exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "vigil started" in self.log():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        raise AssertionError(f"vigil did not start within {timeout} s:\n{self.log()[-3000:]}")

    def stop(self):
        """Stop vigil with SIGTERM; return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("vigil did not exit within 10 s of SIGTERM")
        log = self.log()
        self.ctx.log("vigil stderr tail:\n" + log[-3000:])
        check(SANITIZER_PATTERNS.search(log) is None, "sanitizer report in vigil's stderr")
        return self.proc.returncode

    def events(self):
        path = os.path.join(self.data_dir, "events.jsonl")
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def coap(self, args):
        """Run coap-client-notls in the namespace; return (payload, messages)."""
        out_path = os.path.join(self.workdir, "coap-client.out")
        if os.path.exists(out_path):
            os.unlink(out_path)
        res = self.ns.run([CLIENT_NOTLS, "-B", "8", "-o", out_path] + list(args))
        payload = b""
        if os.path.exists(out_path):
            with open(out_path, "rb") as f:
                payload = f.read()
        self.ctx.log(f"coap-client {args}: exit {res.returncode}; payload {payload!r}; "
                     f"output {res.stdout + res.stderr!r}")
        return payload, res.stdout + res.stderr

    def mqttsn(self, host, args):
        """Run tests/lib/snclient.py as client lab-tool against host:1884 in
        the namespace."""
        client = os.path.join(ROOT, "tests", "lib", "snclient.py")
        res = self.ns.run(["/usr/bin/python3", client, "-H", host, "-p", "1884", "-i", "lab-tool"]
                          + list(args))
        self.ctx.log(f"snclient {host} {args}: exit {res.returncode}; "
                     f"output {res.stdout + res.stderr!r}")
        return res


def netns(ctx):
    ns = Netns()
    ctx.defer(ns.close)
    return ns


PLAINTEXT_DEFAULTS = ("CoAP on UDP 127.0.0.1:5683", "CoAP on UDP [::1]:5683",
                      "MQTT-SN on UDP 127.0.0.1:1884", "MQTT-SN on UDP [::1]:1884")


def listening_lines(log):
    return [line for line in log.splitlines() if "listening for " in line]


@case("default plaintext udp needs credentials", needs="netns", only="vigil")
def default_plaintext_closed(ctx):
    vigil = DefaultVigil(ctx, netns(ctx))
    check(vigil.wait_started(), f"vigil serve started:\n{vigil.log()[-3000:]}")
    lines = listening_lines(vigil.log())
    for listener in PLAINTEXT_DEFAULTS:
        found = [line for line in lines if line.endswith(f"listening for {listener}")]
        check_equal(len(found), 1, f"'{listener}' without anonymous access in {lines}")

    for host in ("127.0.0.1", "[::1]"):
        _, messages = vigil.coap(["-m", "get", f"coap://{host}/ps/lab/defaults"])
        check("4.01" in messages, f"4.01 from CoAP on {host}:5683: {messages!r}")
    for host in ("127.0.0.1", "::1"):
        res = vigil.mqttsn(host, ["pub", "-t", "lab/defaults", "-m", "1", "-q", "1"])
        check_equal(res.returncode, 1, f"snclient exit status on {host}:1884")
        check("CONNACK return code 0x03" in res.stderr, f"CONNACK 0x03: {res.stderr!r}")

    check_equal(vigil.stop(), 0, "vigil exit status")
    failures = [e for e in vigil.events() if e.get("type") == "auth_failure"]
    for proto, host in (("coap", "127.0.0.1:"), ("coap", "[::1]:"), ("mqtt-sn", "127.0.0.1:"),
                        ("mqtt-sn", "[::1]:")):
        check(any(e.get("proto") == proto and e.get("peer", "").startswith(host)
                  for e in failures),
              f"auth_failure of {proto} from {host}: {failures}")


@case("default plaintext udp with anonymous", needs="netns", only="vigil")
def default_plaintext_anonymous(ctx):
    vigil = DefaultVigil(ctx, netns(ctx), ["--anonymous"])
    check(vigil.wait_started(), f"vigil serve --anonymous started:\n{vigil.log()[-3000:]}")
    lines = listening_lines(vigil.log())
    for listener in PLAINTEXT_DEFAULTS:
        found = [line for line in lines
                 if line.endswith(f"listening for {listener} (anonymous access allowed)")]
        check_equal(len(found), 1, f"'{listener}' with anonymous access in {lines}")

    _, messages = vigil.coap(["-m", "put", "-e", "42", "coap://127.0.0.1/ps/lab/coap"])
    check("4." not in messages and "5." not in messages, f"PUT accepted: {messages!r}")
    res = vigil.mqttsn("::1", ["pub", "-t", "lab/sn", "-m", "7", "-q", "1", "-r"])
    check_equal(res.returncode, 0, f"snclient exit status: {res.stderr!r}")
    # Each message comes back from the retained store through the other
    # address family's CoAP listener.
    payload, messages = vigil.coap(["-m", "get", "coap://[::1]/ps/lab/coap"])
    check_equal(payload, b"42", f"CoAP message over [::1]:5683 ({messages!r})")
    payload, messages = vigil.coap(["-m", "get", "coap://127.0.0.1/ps/lab/sn"])
    check_equal(payload, b"7", f"MQTT-SN message over 127.0.0.1:5683 ({messages!r})")

    check_equal(vigil.stop(), 0, "vigil exit status")
    logins = [e.get("proto") for e in vigil.events()
              if e.get("type") == "auth_success" and e.get("detail") == "anonymous"]
    check("coap" in logins, f"anonymous CoAP login event: {logins}")
    check("mqtt-sn" in logins, f"anonymous MQTT-SN login event: {logins}")


@case("default udp port busy", needs="netns", only="vigil")
def default_port_busy(ctx):
    ns = netns(ctx)
    holder = ns.popen(["/usr/bin/python3", "-c",
                       "import socket, sys, time\n"
                       "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                       "s.bind(('127.0.0.1', 5683))\n"
                       "print('bound', flush=True)\n"
                       "time.sleep(120)\n"], stdout=subprocess.PIPE, text=True)

    def stop_holder():
        holder.kill()
        holder.wait()
        holder.stdout.close()

    ctx.defer(stop_holder)
    check_equal(holder.stdout.readline().strip(), "bound", "UDP 127.0.0.1:5683 taken")
    vigil = DefaultVigil(ctx, ns)
    # Like a busy default MQTT port, a busy default UDP port stops the start.
    check(not vigil.wait_started(), "vigil serve exits when 127.0.0.1:5683 is taken")
    check_equal(vigil.stop(), 1, "vigil exit status")
    log = vigil.log()
    check("udp listener 127.0.0.1:5683: cannot bind: address already in use" in log,
          f"error names the listener: {log[-2000:]!r}")
    check("vigil serve: could not start" in log, "start failure reported")


if __name__ == "__main__":
    sys.exit(harness.run("e2e-coap", Fixture))
