"""A blocking wrapper around Debian's paho-mqtt 1.6 client for the e2e tests.

Every call waits for its acknowledgement, and received messages go to a
queue, so a test reads as a sequence of steps.
"""

import queue
import socket
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5


def properties(packet_type, **values):
    """Build paho Properties, e.g. properties(PacketTypes.PUBLISH, MessageExpiryInterval=5)."""
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


class Message:
    """A received PUBLISH, copied out of paho's object."""

    def __init__(self, msg):
        self.topic = msg.topic
        self.payload = bytes(msg.payload)
        self.qos = msg.qos
        self.retain = bool(msg.retain)
        self.properties = getattr(msg, "properties", None)
        self.received_at = time.monotonic()

    def prop(self, name, default=None):
        if self.properties is None:
            return default
        return getattr(self.properties, name, default)

    def __repr__(self):
        return f"Message({self.topic!r}, {self.payload!r}, qos={self.qos}, retain={self.retain})"


class Client:
    """One paho client with a network thread; all waits time out after `timeout` s."""

    def __init__(self, ctx, port, client_id, version=V5, clean=True, timeout=5.0,
                 host="127.0.0.1"):
        self.ctx = ctx
        self.host = host
        self.port = port
        self.client_id = client_id
        self.version = version
        self.timeout = timeout
        self.messages = queue.Queue()
        self.lock = threading.Condition()
        self.connack = None
        self.disconnected = None
        self.acks = {}
        kwargs = {"client_id": client_id, "protocol": version}
        if version == V311:
            kwargs["clean_session"] = clean
        self.clean = clean
        self.c = mqtt.Client(**kwargs)
        self.c.enable_logger(_CtxLogger(ctx, client_id))
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_publish = self._on_publish
        self.local_port = None
        # Event types this client's actions must produce in vigil's events.jsonl.
        self.expected_events = set()
        if not hasattr(ctx, "paho_clients"):
            ctx.paho_clients = []
        ctx.paho_clients.append(self)
        ctx.defer(self.close)

    # -- callbacks ------------------------------------------------------

    def _on_connect(self, client, userdata, flags, rc, props=None):
        with self.lock:
            code = rc.value if hasattr(rc, "value") else rc
            self.connack = (flags.get("session present", 0), code, props)
            self.lock.notify_all()

    def _on_disconnect(self, client, userdata, rc, props=None):
        with self.lock:
            self.disconnected = rc.value if hasattr(rc, "value") else rc
            self.lock.notify_all()

    def _on_message(self, client, userdata, msg):
        m = Message(msg)
        self.ctx.log(f"{self.client_id} received {m!r}")
        self.messages.put(m)

    def _on_subscribe(self, client, userdata, mid, granted, props=None):
        codes = [g.value if hasattr(g, "value") else g for g in granted]
        self._ack(mid, codes)

    def _on_unsubscribe(self, client, userdata, mid, props=None, codes=None):
        self._ack(mid, True)

    def _on_publish(self, client, userdata, mid):
        self._ack(mid, True)

    def _ack(self, mid, value):
        with self.lock:
            self.acks[mid] = value
            self.lock.notify_all()

    def _wait(self, predicate, what):
        with self.lock:
            if not self.lock.wait_for(predicate, self.timeout):
                raise AssertionError(f"{self.client_id}: timed out waiting for {what}")

    # -- operations -----------------------------------------------------

    def connect(self, keepalive=60, session_expiry=None, username=None, password=None,
                will=None, expect_rc=0, **connect_props):
        """Connect and wait for CONNACK; return (session_present, reason code, properties).

        will: (topic, payload, qos, retain, will Properties or None).
        connect_props: extra v5 CONNECT properties by paho name.
        """
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:
            topic, payload, qos, retain, wprops = (list(will) + [None] * 5)[:5]
            self.c.will_set(topic, payload, qos, retain, properties=wprops)
        kwargs = {"keepalive": keepalive}
        if self.version == V5:
            cprops = Properties(PacketTypes.CONNECT)
            if session_expiry is not None:
                cprops.SessionExpiryInterval = session_expiry
            for name, value in connect_props.items():
                setattr(cprops, name, value)
            kwargs["clean_start"] = self.clean
            kwargs["properties"] = cprops
        self.connack = None
        self.disconnected = None
        self.c.connect(self.host, self.port, **kwargs)
        sock = self.c.socket()
        self.local_port = sock.getsockname()[1] if sock else None
        self.c.loop_start()
        self._wait(lambda: self.connack is not None or self.disconnected is not None, "CONNACK")
        if self.connack is None:
            raise AssertionError(f"{self.client_id}: closed before CONNACK ({self.disconnected})")
        self.ctx.log(f"{self.client_id} CONNACK session_present={self.connack[0]} "
                     f"rc={self.connack[1]} props={self.connack[2]}")
        self.expected_events.add("auth_success" if self.connack[1] == 0 else "auth_failure")
        if expect_rc is not None and self.connack[1] != expect_rc:
            raise AssertionError(f"{self.client_id}: CONNACK code {self.connack[1]}, "
                                 f"expected {expect_rc}")
        if self.connack[1] != 0:
            self.stop_loop()
        return self.connack

    def subscribe(self, topic, qos=0, no_local=False, rap=False, rh=0, sub_id=None):
        """Subscribe and return the granted QoS or reason code list."""
        if self.version == V5:
            opts = SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=rap,
                                    retainHandling=rh)
            sprops = None
            if sub_id is not None:
                sprops = properties(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sub_id)
            rc, mid = self.c.subscribe(topic, options=opts, properties=sprops)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"{self.client_id}: subscribe({topic}) failed locally: {rc}")
        self._wait(lambda: mid in self.acks, f"SUBACK for {topic}")
        codes = self.acks.pop(mid)
        self.ctx.log(f"{self.client_id} SUBACK {topic}: {codes}")
        if all(code < 0x80 for code in codes):
            self.expected_events.add("subscribe")
        return codes

    def unsubscribe(self, topic):
        rc, mid = self.c.unsubscribe(topic)
        self._wait(lambda: mid in self.acks, f"UNSUBACK for {topic}")
        self.acks.pop(mid)

    def publish(self, topic, payload, qos=0, retain=False, wait=True, expect_event=True,
                **publish_props):
        """Publish and wait for completion.

        expect_event: False for a publish the broker rejects (too large,
        denied), which leaves no "publish" event.
        """
        pprops = properties(PacketTypes.PUBLISH, **publish_props) if publish_props else None
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=pprops)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"{self.client_id}: publish({topic}) failed locally: {info.rc}")
        if expect_event:
            self.expected_events.add("publish")
        if wait:
            # QoS 0 completes when written; QoS 1/2 when PUBACK/PUBCOMP arrives.
            self._wait(lambda: info.mid in self.acks or info.is_published(),
                       f"completion of publish to {topic} (QoS {qos})")
        return info

    def recv(self, timeout=None):
        try:
            return self.messages.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message within "
                                 f"{self.timeout if timeout is None else timeout} s") from None

    def recv_all(self, count, timeout=None):
        return [self.recv(timeout) for _ in range(count)]

    def expect_nothing(self, wait=1.0):
        try:
            m = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id}: unexpected message {m!r}")

    def wait_disconnected(self, timeout=None):
        with self.lock:
            self.lock.wait_for(lambda: self.disconnected is not None,
                               self.timeout if timeout is None else timeout)
            return self.disconnected

    def disconnect(self, **disconnect_props):
        """Send DISCONNECT (reason 0) and stop the network thread."""
        dprops = properties(PacketTypes.DISCONNECT, **disconnect_props) if disconnect_props else None
        if self.version == V5:
            self.c.disconnect(properties=dprops)
        else:
            self.c.disconnect()
        self._wait(lambda: self.disconnected is not None, "disconnect")
        self.expected_events.add("disconnect")
        self.stop_loop()

    def abort(self):
        """Drop the TCP connection without DISCONNECT, as a crashed device would."""
        # paho's network thread reconnects after a lost connection unless
        # its terminate flag is set first.
        self.c._thread_terminate = True
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.stop_loop()

    def stop_loop(self):
        self.c._thread_terminate = True
        try:
            self.c.loop_stop()
        except Exception:
            pass

    def close(self):
        try:
            if self.c.is_connected():
                self.c.disconnect()
        except Exception:
            pass
        self.stop_loop()
        try:
            self.c.socket() and self.c.socket().close()
        except Exception:
            pass


class _CtxLogger:
    """Sends paho's debug log lines to the case log."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.name = name

    def _log(self, msg, *args, **kwargs):
        try:
            self.ctx.log(f"paho[{self.name}]", msg % args if args else msg)
        except Exception:
            pass

    debug = info = warning = error = exception = critical = _log

    def log(self, level, msg, *args, **kwargs):
        self._log(msg, *args)
