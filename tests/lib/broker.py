"""Start and stop the broker under test (vigil, or mosquitto as a reference).

The target comes from VIGIL_TEST_BROKER ("vigil", the default, or
"mosquitto"). Each Broker listens on a free loopback port, logs its stderr to
a file, is stopped by PID, and reports a crash or sanitizer output as an
error. Only the standard library is used, so every Python suite can import it.
"""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Lines that ASan, UBSan or LSan print when they find a problem.
SANITIZER_PATTERNS = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: UndefinedBehaviorSanitizer|ERROR: UndefinedBehaviorSanitizer")

# vigil's limits keys mapped to mosquitto.conf options. Keys missing here
# have no mosquitto equivalent; tests that rely on them run only on vigil.
MOSQUITTO_LIMITS = {
    "max_packet_size": "max_packet_size",
    "max_queued_messages": "max_queued_messages",
    "max_keep_alive": "max_keepalive",
    "topic_alias_maximum": "max_topic_alias",
    "receive_maximum": "max_inflight_messages",
}


class BrokerError(Exception):
    """The broker failed to start, crashed, or printed sanitizer errors."""


def target():
    """Return the broker kind under test: "vigil" or "mosquitto"."""
    kind = os.environ.get("VIGIL_TEST_BROKER", "vigil")
    if kind not in ("vigil", "mosquitto"):
        raise BrokerError(f"VIGIL_TEST_BROKER={kind!r} is invalid: use vigil or mosquitto")
    return kind


def is_vigil():
    return target() == "vigil"


def vigil_binary():
    path = os.environ.get("VIGIL", os.path.join(REPO, "build-asan", "vigil"))
    return os.path.abspath(path)


def free_port(host="127.0.0.1"):
    """Return a TCP port on host (a loopback address) that was free a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_udp_ports(hosts, avoid=()):
    """Return one distinct UDP port per host, none of them in avoid.

    The sockets stay bound until every port is chosen, so two listeners of
    one broker never get the same port.
    """
    held, ports = [], []
    try:
        for host in hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            for _ in range(100):
                s = socket.socket(family, socket.SOCK_DGRAM)
                s.bind((host, 0))
                held.append(s)
                port = s.getsockname()[1]
                if port not in ports and port not in avoid:
                    ports.append(port)
                    break
            else:
                raise BrokerError(f"no distinct free UDP port on {host}")
    finally:
        for s in held:
            s.close()
    return ports


def wait_port(port, timeout=15.0, proc=None):
    """Poll a TCP connect to 127.0.0.1:port until it succeeds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"broker exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"broker did not accept TCP connections on port {port} within {timeout} s")


class Broker:
    """One broker process on a private data directory and a free port.

    anonymous: allow clients without credentials.
    limits: dict of vigil limits.* keys (see src/config/config.h).
    log_dir: where the broker's stderr and generated files go.
    extra_yaml: more top-level YAML for vigil's -c file (mosquitto ignores it).
    anonymous_listener: also listen on anon_port, a second loopback port that
    accepts clients without credentials, whatever `anonymous` sets for port.
    """

    def __init__(self, log_dir, name="broker", anonymous=True, limits=None, sys_interval=None,
                 kind=None, extra_yaml=None, anonymous_listener=False):
        self.kind = kind or target()
        self.name = name
        self.anonymous = anonymous
        self.anonymous_listener = anonymous_listener
        self.limits = dict(limits or {})
        self.sys_interval = sys_interval
        self.extra_yaml = extra_yaml
        os.makedirs(log_dir, exist_ok=True)
        self.workdir = tempfile.mkdtemp(prefix=f"{name}-", dir=log_dir)
        self.data_dir = os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        self.events_path = os.path.join(self.data_dir, "events.jsonl")
        self.port = free_port()
        self.anon_port = free_port() if anonymous_listener else None
        self.proc = None
        self.starts = 0
        self.stderr_checked = 0
        self.passwd_path = os.path.join(self.workdir, "passwd")
        self.acl_path = os.path.join(self.workdir, "acl")
        self.users = {}  # id -> (password, role), mosquitto only

    # -- configuration --------------------------------------------------

    def _vigil_command(self):
        cmd = [vigil_binary(), "serve", "--data-dir", self.data_dir]
        if not self.anonymous_listener:
            # --anonymous applies to every --mqtt listener, so two listeners
            # that differ go in the configuration file instead.
            cmd += ["--mqtt", f"127.0.0.1:{self.port}"]
            if self.anonymous:
                cmd.append("--anonymous")
        if (self.limits or self.sys_interval is not None or self.extra_yaml
                or self.anonymous_listener):
            path = os.path.join(self.workdir, "vigil.yaml")
            with open(path, "w", encoding="utf-8") as f:
                if self.anonymous_listener:
                    f.write("listeners:\n"
                            f"  - mqtt: 127.0.0.1:{self.port}\n"
                            f"    anonymous: {'true' if self.anonymous else 'false'}\n"
                            f"  - mqtt: 127.0.0.1:{self.anon_port}\n"
                            "    anonymous: true\n")
                if self.sys_interval is not None:
                    f.write(f"sys_interval: {self.sys_interval}\n")
                if self.limits:
                    f.write("limits:\n")
                    for key, value in self.limits.items():
                        f.write(f"  {key}: {value}\n")
                if self.extra_yaml:
                    f.write(self.extra_yaml)
            cmd += ["-c", path]
        return cmd

    def _mosquitto_command(self):
        path = os.path.join(self.workdir, "mosquitto.conf")
        lines = [
            f"per_listener_settings {'true' if self.anonymous_listener else 'false'}",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            # mosquitto started as root switches to user "mosquitto", which
            # cannot write the temporary data directory.
            "user root",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            # Save after every change so that a kill -9 loses as little as
            # vigil's durable store does; mosquitto writes but never fsyncs.
            "autosave_interval 1",
            "autosave_on_changes true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_type subscribe",
            "connection_messages true",
            f"sys_interval {self.sys_interval if self.sys_interval is not None else 2}",
            "max_queued_messages 1000",
        ]
        if not self.anonymous:
            self._write_mosquitto_auth()
            lines += [f"password_file {self.passwd_path}", f"acl_file {self.acl_path}"]
        for key, value in self.limits.items():
            if key in MOSQUITTO_LIMITS:
                lines.append(f"{MOSQUITTO_LIMITS[key]} {value}")
        if self.anonymous_listener:
            # With per_listener_settings the options above belong to the
            # first listener; this one has no password file and no ACL.
            lines += [f"listener {self.anon_port} 127.0.0.1", "allow_anonymous true"]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return ["/usr/sbin/mosquitto", "-c", path]

    def _write_mosquitto_auth(self):
        if not os.path.exists(self.passwd_path):
            open(self.passwd_path, "w").close()
        # Same policy as vigil's default roles: a device reads and writes
        # only its own subtree, a monitor reads everything.
        acl = ["pattern readwrite +/+/+/%u/#"]
        for user, (_, role) in sorted(self.users.items()):
            if role == "monitor":
                acl += [f"user {user}", "topic read #"]
        with open(self.acl_path, "w", encoding="utf-8") as f:
            f.write("\n".join(acl) + "\n")

    # -- life cycle -----------------------------------------------------

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            return self
        if self.kind == "vigil":
            binary = vigil_binary()
            if not os.access(binary, os.X_OK):
                raise BrokerError(f"vigil binary not found at {binary}: build it or set VIGIL")
            cmd = self._vigil_command()
        else:
            cmd = self._mosquitto_command()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        with open(self.stderr_path, "a", encoding="utf-8") as log:
            log.write(f"=== start {self.starts + 1}: {' '.join(cmd)}\n")
        stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                     cwd=self.workdir, env=env)
        stderr.close()
        self.starts += 1
        wait_port(self.port, proc=self.proc)
        if self.anon_port is not None:
            wait_port(self.anon_port, proc=self.proc)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """Stop with SIGTERM; raise BrokerError on a crash, hang or sanitizer report."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise BrokerError(f"broker pid {proc.pid} did not exit within {timeout} s of SIGTERM")
            if proc.returncode != 0:
                raise BrokerError(f"broker exited with status {proc.returncode} after SIGTERM; "
                                  f"see {self.stderr_path}")
        else:
            raise BrokerError(f"broker pid {proc.pid} had already exited with status "
                              f"{proc.returncode}; see {self.stderr_path}")
        self.check_sanitizer()

    def kill9(self):
        """Kill the broker with SIGKILL, as a crash or power loss would."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            raise BrokerError(f"broker pid {proc.pid} had already exited with status "
                              f"{proc.returncode}; see {self.stderr_path}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.check_sanitizer()

    def check_alive(self):
        """Raise BrokerError if the process died or printed sanitizer errors."""
        self.check_sanitizer()
        if not self.alive():
            code = None if self.proc is None else self.proc.returncode
            raise BrokerError(f"broker is not running (exit status {code}); see {self.stderr_path}")

    def check_sanitizer(self):
        """Raise BrokerError for sanitizer output printed since the last check."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(self.stderr_checked)
                text = f.read().decode("utf-8", "replace")
                self.stderr_checked = f.tell()
        except FileNotFoundError:
            return
        match = SANITIZER_PATTERNS.search(text)
        if match:
            start = max(0, match.start() - 200)
            raise BrokerError(f"sanitizer error in broker stderr ({self.stderr_path}):\n"
                              f"{text[start:start + 3000]}")

    def stderr_tail(self, size=4000):
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - size))
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # -- devices --------------------------------------------------------

    def add_device(self, device_id, role=None):
        """Create a device and return its password."""
        if self.kind == "vigil":
            cmd = [vigil_binary(), "device", "add", device_id, "--data-dir", self.data_dir, "--quiet"]
            if role:
                cmd += ["--role", role]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise BrokerError(f"'{' '.join(cmd)}' failed with status {out.returncode}: "
                                  f"{out.stderr.strip()}")
            password = out.stdout.strip().splitlines()[-1].strip() if out.stdout.strip() else ""
            if not password:
                raise BrokerError(f"'{' '.join(cmd)}' printed no password")
            return password
        password = secrets.token_hex(16)
        subprocess.run(["mosquitto_passwd", "-b", self.passwd_path, device_id, password],
                       check=True, capture_output=True, timeout=30)
        self.users[device_id] = (password, role or "device")
        self._write_mosquitto_auth()
        if self.alive():
            # mosquitto rereads its password and ACL files on SIGHUP.
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
        return password

    def remove_device(self, device_id):
        """Remove a device from the inventory (vigil only)."""
        if self.kind != "vigil":
            raise BrokerError("remove_device runs only against vigil")
        cmd = [vigil_binary(), "device", "remove", device_id, "--data-dir", self.data_dir]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise BrokerError(f"'{' '.join(cmd)}' failed with status {out.returncode}: "
                              f"{out.stderr.strip()}")

    # -- events ---------------------------------------------------------

    def events(self):
        """Return every event in events.jsonl (vigil only; [] for mosquitto)."""
        if self.kind != "vigil":
            return []
        out = []
        try:
            with open(self.events_path, encoding="utf-8") as f:
                for line in f:
                    # The sink may be writing the last line right now: a line
                    # without its newline is not complete yet.
                    if not line.endswith("\n"):
                        break
                    line = line.strip()
                    if line:
                        out.append(json.loads(line))
        except FileNotFoundError:
            pass
        return out

    def wait_events(self, predicate, timeout=3.0):
        """Wait until predicate(events) is true; return the events list.

        Events are written by a separate thread, so they may appear a
        moment after the broker replied to the packet that caused them.
        """
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events()
            if predicate(evs):
                return evs
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
