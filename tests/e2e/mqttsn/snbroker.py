"""vigil with MQTT-SN listeners, for the mqttsn suites.

SnBroker runs `vigil serve --mqtt 127.0.0.1:PORT --mqttsn 127.0.0.1:UDP
--mqttsn [::1]:UDP6 [--mqttsn-dtls 127.0.0.1:DTLS --psk] [--anonymous]`
with a gateway section in its -c file. Relay starts
tests/tools/sn_dtls_client for the DTLS listener. Both are vigil-only:
mosquitto has no MQTT-SN gateway.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from broker import Broker, BrokerError, free_udp_ports, vigil_binary  # noqa: E402

# Predefined topic ids of the test gateway ("%d" is the device id).
PREDEFINED = {1: "sn/pre/one", 2: "hospital/%d/pre", 513: "sn/pre/alarms"}
GATEWAY_ID = 7
ADVERTISE_S = 2
SLEEP_QUEUE = 5



def gateway_yaml(advertise_s=ADVERTISE_S, predefined=PREDEFINED):
    lines = ["gateway:",
             f"  mqttsn_gateway_id: {GATEWAY_ID}",
             f"  mqttsn_advertise: {advertise_s}",
             f"  mqttsn_sleep_queue: {SLEEP_QUEUE}",
             "  predefined_topics:"]
    lines += [f'    {k}: "{v}"' for k, v in sorted(predefined.items())]
    # Many wrong logins in a row must not block the loopback address.
    lines += ["auth:", "  failure_burst: 1000", "  failures_per_minute: 60000"]
    return "\n".join(lines) + "\n"


class SnBroker(Broker):
    """vigil with MQTT, MQTT-SN (IPv4 and IPv6) and optionally MQTT-SN over DTLS."""

    def __init__(self, log_dir, name="mqttsn", anonymous=True, dtls=False, limits=None,
                 advertise_s=ADVERTISE_S):
        super().__init__(log_dir, name=name, anonymous=anonymous, limits=limits,
                         extra_yaml=gateway_yaml(advertise_s), kind="vigil")
        hosts = ["127.0.0.1", "::1"] + (["127.0.0.1"] if dtls else [])
        ports = free_udp_ports(hosts, avoid=[self.port])
        self.sn_port, self.sn_port6 = ports[0], ports[1]
        self.dtls_port = ports[2] if dtls else None
        self.devices_dir = os.path.join(self.workdir, "devices")
        os.makedirs(self.devices_dir, exist_ok=True)

    def _vigil_command(self):
        cmd = super()._vigil_command()
        cmd += ["--mqttsn", f"127.0.0.1:{self.sn_port}", "--mqttsn", f"[::1]:{self.sn_port6}"]
        if self.dtls_port is not None:
            cmd += ["--mqttsn-dtls", f"127.0.0.1:{self.dtls_port}", "--psk"]
        return cmd

    @property
    def ca_file(self):
        return os.path.join(self.data_dir, "pki", "ca.crt")

    def add_dtls_device(self, device_id, role=None):
        """Provision a device with a certificate and a PSK; return (cert, key, psk hex)."""
        cmd = [vigil_binary(), "device", "add", device_id, "--data-dir", self.data_dir,
               "--out", self.devices_dir, "--quiet", "--psk"]
        if role:
            cmd += ["--role", role]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise BrokerError(f"'{' '.join(cmd)}' failed: {out.stderr.strip()}")
        lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
        if len(lines) < 2:
            raise BrokerError(f"vigil device add {device_id} --psk printed no PSK")
        # vigil rereads its inventory about once a second.
        time.sleep(1.3)
        return (os.path.join(self.devices_dir, f"{device_id}.crt"),
                os.path.join(self.devices_dir, f"{device_id}.key"), lines[1])

    def sn_events(self, since=0):
        return [e for e in self.events()[since:] if e.get("proto") == "mqtt-sn"]


def relay_binary():
    build = os.environ.get("VIGIL_ASAN_DIR", os.path.join(ROOT, "build-asan"))
    return os.path.join(os.path.abspath(build), "sn_dtls_client")


class Relay:
    """tests/tools/sn_dtls_client between a plaintext local port and the DTLS listener."""

    def __init__(self, ctx, port, psk=None, cert=None, ca=None, expect_ok=True,
                 session_in=None, session_out=None):
        args = [relay_binary(), "--connect", f"127.0.0.1:{port}"]
        if psk is not None:
            args += ["--psk-identity", psk[0], "--psk", psk[1]]
        if cert is not None:
            args += ["--cert", cert[0], "--key", cert[1]]
        if ca is not None:
            args += ["--ca", ca]
        if session_in is not None:
            args += ["--session-in", session_in]
        if session_out is not None:
            args += ["--session-out", session_out]
        ctx.log("relay:", " ".join(args))
        self.ctx = ctx
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.port = None
        self.handshake = self.proc.stdout.readline().strip()
        ctx.log("relay:", self.handshake)
        if not self.handshake.startswith("handshake ok"):
            self.proc.wait(10)
            self.error = self.proc.stderr.read().strip()
            ctx.log("relay exit", self.proc.returncode, self.error)
            if expect_ok:
                raise AssertionError(f"DTLS handshake failed: {self.error}")
            return
        line = self.proc.stdout.readline().strip()
        ctx.log("relay:", line)
        self.port = int(line.rsplit(":", 1)[1])

    @property
    def resumed(self):
        """Whether the handshake resumed the session given as session_in."""
        return self.handshake.endswith(" resumed")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
