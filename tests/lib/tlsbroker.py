"""A broker with an MQTTS listener and its provisioned devices, for the TLS tests.

Against vigil the broker runs as
`vigil serve --data-dir D --mqtts 127.0.0.1:PORT [--psk] [--password-over-tls]`
and creates its own CA in D/pki/; devices are made with `vigil device add
--out DIR`, rotated, revoked and reloaded with vigil's own commands.

Against mosquitto 2.0 (the reference) this module plays vigil's part with
openssl: the same D/pki/ layout (ca.crt, ca.key, crl.pem, server.crt,
server.key), device certificates with CN=<id> and the URI SAN
urn:vigil:device:<id>, a password file, a PSK file and an ACL with the
same policy as vigil's default roles. mosquitto takes the device id from
the certificate's CN (use_identity_as_username) or the PSK identity. A
mosquitto listener cannot offer certificates and PSK at once, so a PSK
broker there takes PSK only.
"""

import os
import secrets
import signal
import subprocess
import time

import pkitool
from broker import Broker, BrokerError, free_port, vigil_binary

# TLS 1.2 suites with ECDSA keys and forward secrecy; TLS 1.3 suites stay
# OpenSSL's defaults.
MOSQUITTO_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                     "ECDHE-ECDSA-CHACHA20-POLY1305")
MOSQUITTO_PSK_CIPHERS = "PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384:PSK-CHACHA20-POLY1305"

# vigil rereads its device inventory about once a second; this adds a margin.
INVENTORY_RELOAD_S = 1.3


class Device:
    """A provisioned device: its files and secrets."""

    def __init__(self, device_id, role, directory):
        self.id = device_id
        self.role = role
        self.dir = directory
        self.cert = os.path.join(directory, f"{device_id}.crt")
        self.key = os.path.join(directory, f"{device_id}.key")
        self.password = None
        self.psk = None  # hex string

    def __repr__(self):
        return f"Device({self.id!r}, role={self.role!r}, cert={self.cert!r})"


class TlsBroker(Broker):
    """A broker whose one listener is MQTT over TLS on 127.0.0.1.

    psk: TLS-PSK accepted (the device id is the PSK identity).
    password: user name and password accepted over TLS without a client certificate.
    config: extra top-level YAML text for vigil (e.g. "tls:\\n  identity: cn\\n").
    ipv6: vigil only, a second MQTT over TLS listener on [::1]:port6.
    """

    def __init__(self, log_dir, name="tls", psk=False, password=False, config=None, kind=None,
                 ipv6=False):
        super().__init__(log_dir, name=name, anonymous=False, kind=kind)
        self.port6 = free_port("::1") if ipv6 else None
        self.psk = psk
        self.password = password
        self.config = config
        self.pki_dir = os.path.join(self.data_dir, "pki")
        self.ca_file = os.path.join(self.pki_dir, "ca.crt")
        self.ca_key = os.path.join(self.pki_dir, "ca.key")
        self.crl_file = os.path.join(self.pki_dir, "crl.pem")
        self.server_cert = os.path.join(self.pki_dir, "server.crt")
        self.server_key = os.path.join(self.pki_dir, "server.key")
        self.devices_dir = os.path.join(self.workdir, "devices")
        os.makedirs(self.devices_dir, exist_ok=True)
        self.psk_path = os.path.join(self.workdir, "psk")
        self.devices = {}
        self.ca = None  # pkitool.CaDir, mosquitto only
        self.rotations = 0
        self.changed_at = 0.0  # time.monotonic() of the last inventory change
        self.config_path = None
        if config:
            # `vigil device` reads the same file, e.g. for tls.device_cert_days.
            self.config_path = os.path.join(self.workdir, "vigil.yaml")
            with open(self.config_path, "w", encoding="utf-8") as f:
                f.write(config)
        if self.kind != "vigil":
            self._mosquitto_pki()

    # -- configuration --------------------------------------------------

    def _vigil_command(self):
        cmd = [vigil_binary(), "serve", "--data-dir", self.data_dir,
               "--mqtts", f"127.0.0.1:{self.port}"]
        if self.port6 is not None:
            cmd += ["--mqtts", f"[::1]:{self.port6}"]
        if self.psk:
            cmd.append("--psk")
        if self.password:
            cmd.append("--password-over-tls")
        if self.config_path:
            cmd += ["-c", self.config_path]
        return cmd

    def _mosquitto_pki(self):
        os.makedirs(self.pki_dir, exist_ok=True)
        ca_dir = os.path.join(self.workdir, "ca")
        os.makedirs(ca_dir, exist_ok=True)
        generated = pkitool.self_signed_ca(ca_dir, "vigil test CA")
        for src, dst in ((generated.ca_crt, self.ca_file), (generated.ca_key, self.ca_key)):
            os.replace(src, dst)
        self.ca = pkitool.CaDir(os.path.join(ca_dir, "db"), self.ca_file, self.ca_key)
        self.ca.issue(self.pki_dir, "server", "/CN=vigil", pkitool.server_extensions())
        self.ca.write_crl(self.crl_file)
        open(self.psk_path, "a").close()

    def _mosquitto_command(self):
        path = os.path.join(self.workdir, "mosquitto.conf")
        lines = [
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            "tls_version tlsv1.2",
        ]
        if self.psk:
            lines += ["psk_hint vigil", f"psk_file {self.psk_path}",
                      "use_identity_as_username true", f"ciphers {MOSQUITTO_PSK_CIPHERS}"]
        else:
            lines += [f"cafile {self.ca_file}", f"certfile {self.server_cert}",
                      f"keyfile {self.server_key}", f"crlfile {self.crl_file}",
                      f"ciphers {MOSQUITTO_CIPHERS}"]
            if self.password:
                lines += ["require_certificate false", f"password_file {self.passwd_path}"]
            else:
                lines += ["require_certificate true", "use_identity_as_username true"]
        lines += [
            "allow_anonymous false",
            f"acl_file {self.acl_path}",
            "user root",
            "persistence false",
            "log_dest stderr",
            "log_type all",
            "connection_messages true",
            "sys_interval 1",
        ]
        self._write_acl()
        if not os.path.exists(self.passwd_path):
            open(self.passwd_path, "w").close()
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return ["/usr/sbin/mosquitto", "-c", path]

    def _write_acl(self):
        # vigil's default roles: a device reads and writes its own subtree,
        # a monitor reads everything, $SYS included.
        acl = ["pattern readwrite +/+/+/%u/#"]
        for dev in sorted(self.devices.values(), key=lambda d: d.id):
            if dev.role == "monitor":
                acl += [f"user {dev.id}", "topic read #", "topic read $SYS/#"]
        with open(self.acl_path, "w", encoding="utf-8") as f:
            f.write("\n".join(acl) + "\n")

    # -- vigil commands -------------------------------------------------

    def vigil(self, *args, check=True, timeout=60):
        """Run `vigil ARGS... --data-dir D`; return the CompletedProcess."""
        cmd = [vigil_binary()] + [str(a) for a in args] + ["--data-dir", self.data_dir]
        if self.config_path:
            cmd += ["-c", self.config_path]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        with open(self.stderr_path, "a", encoding="utf-8") as log:
            log.write(f"=== {' '.join(cmd)} -> {out.returncode}\n{out.stderr}")
        if check and out.returncode != 0:
            raise BrokerError(f"'{' '.join(cmd)}' failed with status {out.returncode}: "
                              f"{out.stderr.strip()} {out.stdout.strip()}")
        return out

    # -- devices --------------------------------------------------------

    def add_device(self, device_id, role=None, psk=False, csr=None, device_type=None):
        """Provision a device; return a Device with cert, key, password and psk.

        csr: path of a PEM request; then no key is made and Device.key is None.
        """
        role = role or "device"
        dev = Device(device_id, role, self.devices_dir)
        if csr is not None:
            dev.key = None
        if self.kind == "vigil":
            args = ["device", "add", device_id, "--out", self.devices_dir, "--quiet"]
            if role != "device":
                args += ["--role", role]
            if psk:
                args.append("--psk")
            if csr is not None:
                args += ["--csr", csr]
            if device_type:
                args += ["--type", device_type]
            lines = [ln.strip() for ln in self.vigil(*args).stdout.splitlines() if ln.strip()]
            if not lines:
                raise BrokerError(f"vigil device add {device_id} printed no password")
            dev.password = lines[0]
            if psk:
                if len(lines) < 2:
                    raise BrokerError(f"vigil device add {device_id} --psk printed no PSK")
                dev.psk = lines[1]
        else:
            self._mosquitto_device(dev, psk, csr)
        if not os.path.exists(dev.cert):
            raise BrokerError(f"no certificate {dev.cert} after adding {device_id}")
        self.devices[device_id] = dev
        self.changed_at = time.monotonic()
        if self.kind != "vigil":
            self._write_acl()
            self.reload()
        return dev

    def _mosquitto_device(self, dev, psk, csr):
        ext = pkitool.device_extensions(dev.id)
        if csr is None:
            self.ca.issue(dev.dir, dev.id, f"/CN={dev.id}", ext)
        else:
            self.ca.sign(csr, dev.cert, ext)
        dev.password = secrets.token_hex(16)
        subprocess.run(["mosquitto_passwd", "-b", self.passwd_path, dev.id, dev.password],
                       check=True, capture_output=True, timeout=30)
        if psk:
            dev.psk = secrets.token_hex(32)
            with open(self.psk_path, "a", encoding="utf-8") as f:
                f.write(f"{dev.id}:{dev.psk}\n")

    def rotate(self, device_id, overlap=None):
        """Issue a new certificate for a device; return a Device for the new files."""
        if self.kind != "vigil":
            raise BrokerError("rotation with an overlap is vigil's own feature")
        self.rotations += 1
        out = os.path.join(self.devices_dir, f"rotation{self.rotations}")
        os.makedirs(out, exist_ok=True)
        args = ["device", "rotate", device_id, "--out", out]
        if overlap is not None:
            args += ["--overlap", overlap]
        # The new certificate works at once: no inventory change to wait for.
        self.vigil(*args)
        old = self.devices[device_id]
        dev = Device(device_id, old.role, out)
        dev.password, dev.psk = old.password, old.psk
        if not os.path.exists(dev.cert):
            raise BrokerError(f"no certificate {dev.cert} after rotating {device_id}")
        return dev

    def acl_add(self, device_id, action, pattern):
        """Grant pattern to one device with `vigil acl add` (action: publish|subscribe)."""
        if self.kind != "vigil":
            raise BrokerError("stored access rules are vigil's own feature")
        self.vigil("acl", "add", "--device", device_id, f"--{action}", pattern)
        self.changed_at = time.monotonic()

    def revoke(self, device_id):
        """Revoke every certificate of a device."""
        if self.kind == "vigil":
            self.vigil("device", "revoke", device_id)
            return
        self.ca.revoke(self.devices[device_id].cert)
        self.ca.write_crl(self.crl_file)
        # mosquitto reads its CRL only when a listener starts.
        self.restart()

    def settle(self):
        """Wait until a running vigil has seen the last inventory change.

        vigil rereads its device inventory within about a second of a change;
        mosquitto has reread its files on the SIGHUP that add_device sent.
        """
        if self.kind == "vigil":
            remaining = self.changed_at + INVENTORY_RELOAD_S - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)

    def restart(self):
        """Stop and start again on the same port and data directory."""
        self.stop()
        time.sleep(0.2)
        self.start()

    def reload(self):
        """Send SIGHUP: reread certificates, CA, CRL (and for mosquitto its files)."""
        if self.alive():
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
