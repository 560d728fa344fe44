"""vigil with CoAP listeners, and libcoap's coap-client, for the coap suites.

CoapBroker runs `vigil serve -c FILE` whose listeners are: MQTT on
127.0.0.1 and [::1] (anonymous), plaintext CoAP on 127.0.0.1 and [::1] (anonymous),
plaintext CoAP on 127.0.0.1 without anonymous access, and CoAP over DTLS
on 127.0.0.1 and [::1] with client certificates and PSK. The gateway
section makes block-wise limits and idle release quick to test. Every
case is vigil-only: mosquitto has no CoAP front end.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from broker import Broker, BrokerError, free_port, free_udp_ports, vigil_binary  # noqa: E402

MAX_BODY = 4096
IDLE_S = 10
TOPIC_BASE = "hospital/%u/%t/%d/"
CLIENT_NOTLS = "/usr/bin/coap-client-notls"
CLIENT_DTLS = "/usr/bin/coap-client-openssl"



class CoapBroker(Broker):
    """vigil with MQTT, CoAP (IPv4, IPv6, and one listener without anonymous
    access) and CoAP over DTLS (IPv4 and IPv6)."""

    def __init__(self, log_dir, name="coap", auth_burst=1000):
        super().__init__(log_dir, name=name, anonymous=True, kind="vigil")
        self.auth_burst = auth_burst
        (self.coap_port, self.coap_port6, self.closed_port, self.dtls_port,
         self.dtls_port6) = free_udp_ports(["127.0.0.1", "::1", "127.0.0.1", "127.0.0.1", "::1"],
                                           avoid=[self.port])
        self.port6 = free_port("::1")
        self.devices_dir = os.path.join(self.workdir, "devices")
        os.makedirs(self.devices_dir, exist_ok=True)

    def _vigil_command(self):
        path = os.path.join(self.workdir, "vigil.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("listeners:\n"
                    f"  - mqtt: 127.0.0.1:{self.port}\n"
                    "    anonymous: true\n"
                    f"  - mqtt: \"[::1]:{self.port6}\"\n"
                    "    anonymous: true\n"
                    f"  - coap: 127.0.0.1:{self.coap_port}\n"
                    "    anonymous: true\n"
                    f"  - coap: \"[::1]:{self.coap_port6}\"\n"
                    "    anonymous: true\n"
                    f"  - coap: 127.0.0.1:{self.closed_port}\n"
                    f"  - coaps: 127.0.0.1:{self.dtls_port}\n"
                    "    psk: true\n"
                    f"  - coaps: \"[::1]:{self.dtls_port6}\"\n"
                    "    psk: true\n"
                    "gateway:\n"
                    f"  topic_base: \"{TOPIC_BASE}\"\n"
                    f"  coap_max_body: {MAX_BODY}\n"
                    f"  coap_idle: {IDLE_S}\n"
                    # Wrong credentials in many cases must not block
                    # loopback unless a case lowers auth_burst.
                    "auth:\n"
                    f"  failure_burst: {self.auth_burst}\n"
                    f"  failures_per_minute: {60000 if self.auth_burst >= 1000 else 1}\n")
        return [vigil_binary(), "serve", "--data-dir", self.data_dir, "-c", path]

    @property
    def ca_file(self):
        return os.path.join(self.data_dir, "pki", "ca.crt")

    def add_coap_device(self, device_id, psk=False, role=None, dev_type="bedside-monitor",
                        unit="icu3"):
        """Provision a device with a certificate; return (cert, key, psk text).

        psk: also create a PSK. `vigil device add --quiet` prints it in hex
        on its second line, and its bytes are printable, which is the form
        coap-client takes with -k. The PSK text is None without psk.
        """
        cmd = [vigil_binary(), "device", "add", device_id, "--data-dir", self.data_dir,
               "--out", self.devices_dir, "--quiet", "--type", dev_type, "--unit", unit]
        if psk:
            cmd.append("--psk")
        if role:
            cmd += ["--role", role]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise BrokerError(f"'{' '.join(cmd)}' failed: {out.stderr.strip()}")
        key = None
        if psk:
            lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
            if len(lines) < 2:
                raise BrokerError(f"vigil device add {device_id} --psk printed no PSK")
            key = bytes.fromhex(lines[1]).decode("ascii")
        # vigil rereads its inventory about once a second.
        time.sleep(1.5)
        return (os.path.join(self.devices_dir, f"{device_id}.crt"),
                os.path.join(self.devices_dir, f"{device_id}.key"), key)

    def coap_events(self, since=0):
        return [e for e in self.events()[since:] if e.get("proto") in ("coap", "dtls")]


class Result:
    """Output of one coap-client run: out is the response payload (the -o
    file, or stdout for an observation), messages what it printed."""

    def __init__(self, rc, out, stdout, stderr):
        self.rc = rc
        self.out = out
        self.messages = (stdout + stderr).decode("utf-8", "replace")

    @property
    def text(self):
        return self.out.decode("utf-8", "replace")

    @property
    def both(self):
        return self.messages + self.text


def coap_client(ctx, args, dtls=False, timeout=30):
    """Run coap-client with args (the URI last); return a Result.

    The payload goes to a file with -o, because on stdout coap-client adds
    a newline. -B bounds how long it waits. A failed DTLS handshake still
    exits 0, so callers check the output, never only the status.
    """
    binary = CLIENT_DTLS if dtls else CLIENT_NOTLS
    path = os.path.join(ctx.broker.workdir, "coap-client.out")
    if os.path.exists(path):
        os.unlink(path)
    cmd = [binary, "-B", "8", "-o", path] + list(args)
    ctx.log("run:", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    out = b""
    if os.path.exists(path):
        with open(path, "rb") as f:
            out = f.read()
    ctx.log(f"exit {proc.returncode}; payload {out[:2000]!r}; stdout {proc.stdout[:2000]!r}; "
            f"stderr {proc.stderr[:2000]!r}")
    return Result(proc.returncode, out, proc.stdout, proc.stderr)


def start_coap_client(ctx, args, dtls=False):
    """Start coap-client in the background (for -s); return the Popen."""
    binary = CLIENT_DTLS if dtls else CLIENT_NOTLS
    cmd = [binary, "-B", "30"] + list(args)
    ctx.log("start:", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stop():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    ctx.defer(stop)
    return proc


def finish(ctx, proc, timeout=30):
    out, err = proc.communicate(timeout=timeout)
    ctx.log(f"exit {proc.returncode}; stdout {out[:2000]!r}; stderr {err[:2000]!r}")
    return Result(proc.returncode, out, b"", err)
