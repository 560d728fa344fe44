#!/usr/bin/python3
"""SIEM export end to end. `vigil siem-send` drives the exporter and its
outbox against a real rsyslogd that receives over TLS (RFC 5425), plain
TCP with octet counting (RFC 6587) or UDP. The checks read the lines that
rsyslog writes to a file: every message id present, order kept, nothing
lost across a receiver restart, and the CEF and OCSF JSON bodies parsed.

Usage: /usr/bin/python3 tests/e2e/siem/run.py [NAME-SUBSTRING...]
Each case starts its own rsyslogd (`rsyslogd -n -f CONF -i PIDFILE`, no
/dev/log input) on a free 127.0.0.1 port and stops it by PID.
"""

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))

import harness  # noqa: E402
from broker import free_port, vigil_binary  # noqa: E402
from harness import case, check, check_equal  # noqa: E402
from pkitool import openssl  # noqa: E402

RSYSLOGD = "/usr/sbin/rsyslogd"
SD_SEQ = re.compile(r'\[vigil@32473 seq="(\d+)"')
CLIENT = re.compile(r"siem-test-(\d+)")


class Rsyslog:
    """One rsyslogd with one input (tls, tcp or udp) that writes every
    message it receives, as received, to out.log."""

    def __init__(self, work, transport, port, ctx, authmode="x509/name"):
        self.work = work
        self.transport = transport
        self.port = port
        self.ctx = ctx
        self.authmode = authmode
        self.out = os.path.join(work, "out.log")
        self.proc = None
        self.starts = 0

    def _config(self):
        w = self.work
        lines = [f'global(workDirectory="{w}" maxMessageSize="64k"']
        if self.transport == "tls":
            lines[0] += (f' DefaultNetstreamDriver="ossl"'
                         f' DefaultNetstreamDriverCAFile="{w}/../pki/ca.pem"'
                         f' DefaultNetstreamDriverCertFile="{w}/../pki/server.pem"'
                         f' DefaultNetstreamDriverKeyFile="{w}/../pki/server.key"')
        lines[0] += ")"
        if self.transport == "tls":
            # The exporter presents no client certificate, so only the
            # exporter verifies its peer (anon mode on the receiver side).
            lines.append('module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" '
                         'StreamDriver.Authmode="anon")')
            lines.append(f'input(type="imtcp" port="{self.port}" address="127.0.0.1")')
        elif self.transport == "tcp":
            lines.append('module(load="imtcp")')
            lines.append(f'input(type="imtcp" port="{self.port}" address="127.0.0.1")')
        else:
            lines.append('module(load="imudp")')
            lines.append(f'input(type="imudp" port="{self.port}" address="127.0.0.1")')
        lines.append('template(name="raw" type="string" string="%rawmsg%\\n")')
        lines.append(f'action(type="omfile" file="{self.out}" template="raw")')
        return "\n".join(lines) + "\n"

    def start(self):
        self.starts += 1
        conf = os.path.join(self.work, "rsyslog.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(self._config())
        self.ctx.log("rsyslog config:\n" + self._config())
        err = open(os.path.join(self.work, f"rsyslogd-{self.starts}.stderr"), "w")
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", conf, "-i", os.path.join(self.work, "rsyslogd.pid")],
            stdout=err, stderr=subprocess.STDOUT)
        err.close()
        self.ctx.log("rsyslogd started, pid", self.proc.pid, "port", self.port)
        if self.transport == "udp":
            self._wait_udp()
        else:
            self._wait_tcp()

    def _wait_tcp(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            check(self.proc.poll() is None, f"rsyslogd exited with status {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"rsyslogd did not listen on port {self.port} within 15 s")

    def _wait_udp(self):
        """Sends probe datagrams until one shows in the output file."""
        deadline = time.monotonic() + 15
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while time.monotonic() < deadline:
                check(self.proc.poll() is None,
                      f"rsyslogd exited with status {self.proc.returncode}")
                s.sendto(b"<14>1 - - probe - - - udp-ready-probe", ("127.0.0.1", self.port))
                time.sleep(0.2)
                if os.path.exists(self.out):
                    with open(self.out, encoding="utf-8", errors="replace") as f:
                        if "udp-ready-probe" in f.read():
                            return
        raise AssertionError(f"rsyslogd did not receive on udp port {self.port} within 15 s")

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("rsyslogd did not exit within 10 s of SIGTERM")
        finally:
            self.ctx.log("rsyslogd stopped, status", self.proc.returncode)
            self.proc = None

    def lines(self):
        try:
            with open(self.out, encoding="utf-8", errors="replace") as f:
                return [ln.rstrip("\n") for ln in f if "udp-ready-probe" not in ln]
        except FileNotFoundError:
            return []

    def wait_lines(self, count, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.lines()
            if len(got) >= count:
                return got
            time.sleep(0.1)
        return self.lines()


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.pki = os.path.join(log_dir, "pki")
        self.rsyslog = None
        self.made_pki = False

    def make_pki(self, ctx):
        if self.made_pki:
            return
        os.makedirs(self.pki, exist_ok=True)
        p = self.pki
        curve = ["-pkeyopt", "ec_paramgen_curve:P-256"]
        openssl("req", "-x509", "-newkey", "ec", *curve, "-nodes", "-keyout", f"{p}/ca.key",
                "-out", f"{p}/ca.pem", "-days", "2", "-subj", "/CN=siem test CA", log=ctx.log)
        openssl("req", "-newkey", "ec", *curve, "-nodes", "-keyout", f"{p}/server.key",
                "-out", f"{p}/server.csr", "-subj", "/CN=siem.test", log=ctx.log)
        with open(f"{p}/ext.cnf", "w", encoding="utf-8") as f:
            f.write("subjectAltName=DNS:siem.test,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", f"{p}/server.csr", "-CA", f"{p}/ca.pem", "-CAkey",
                f"{p}/ca.key", "-CAcreateserial", "-out", f"{p}/server.pem", "-days", "2",
                "-extfile", f"{p}/ext.cnf", log=ctx.log)
        # A second CA that did not sign the receiver's certificate.
        openssl("req", "-x509", "-newkey", "ec", *curve, "-nodes", "-keyout",
                f"{p}/other.key", "-out", f"{p}/other.pem", "-days", "2", "-subj",
                "/CN=other CA", log=ctx.log)
        self.made_pki = True

    def before(self, c, ctx):
        self.make_pki(ctx)
        work = os.path.join(self.log_dir, f"case{c.number:03d}")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        ctx.work = work
        ctx.fixture = self

    def start_rsyslog(self, ctx, transport):
        self.rsyslog = Rsyslog(ctx.work, transport, free_port(), ctx)
        self.rsyslog.start()
        return self.rsyslog

    def after(self, c, ctx):
        r, self.rsyslog = self.rsyslog, None
        if r is not None:
            r.stop()

    def on_failure(self, c, ctx, exc):
        r, self.rsyslog = self.rsyslog, None
        if r is not None:
            for name in sorted(os.listdir(r.work)):
                if name.endswith(".stderr"):
                    with open(os.path.join(r.work, name), encoding="utf-8",
                              errors="replace") as f:
                        ctx.log(f"{name}:\n" + f.read()[-3000:])
            if r.proc is not None:
                r.proc.kill()
                r.proc.wait()

    def close(self):
        pass


def check_no_sanitizer(stderr):
    check("ERROR: AddressSanitizer" not in stderr and "ERROR: LeakSanitizer" not in stderr
          and "runtime error:" not in stderr, "siem-send printed a sanitizer error")


def siem_send(ctx, r, *args, transport=None, events=0, wait=30, data_dir=None, background=False,
              check_status=0):
    """Runs `vigil siem-send` against r; returns its stdout (or the Popen)."""
    transport = transport or r.transport
    cmd = [vigil_binary(), "siem-send", "--data-dir", data_dir or os.path.join(ctx.work, "data"),
           "--name", "e2e", "--transport", transport, "--address", f"127.0.0.1:{r.port}",
           "--hostname", "vigil-e2e", "--events", str(events), "--wait", str(wait)]
    if transport == "tls":
        cmd += ["--ca-file", os.path.join(ctx.fixture.pki, "ca.pem")]
    cmd += [str(a) for a in args]
    ctx.log("run:", " ".join(cmd))
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=wait + 60)
    ctx.log("exit", out.returncode, "stdout:", out.stdout.strip())
    ctx.log("stderr:", out.stderr[-3000:])
    check_no_sanitizer(out.stderr)
    if check_status is not None:
        check_equal(out.returncode, check_status, "siem-send exit status")
    return out.stdout


def seqs_and_numbers(lines):
    """Returns (outbox seqs, test message numbers) in received order."""
    seqs, numbers = [], []
    for ln in lines:
        m = SD_SEQ.search(ln) or re.search(r"externalId=(\d+)", ln) \
            or re.search(r'"uid":"(\d+)"\}', ln)
        check(m is not None, f"no message id in line: {ln[:200]}")
        seqs.append(int(m.group(1)))
        n = CLIENT.search(ln)
        check(n is not None, f"no test message number in line: {ln[:200]}")
        numbers.append(int(n.group(1)))
    return seqs, numbers


def check_exactly_once(ctx, lines, first, count):
    seqs, numbers = seqs_and_numbers(lines)
    ctx.log("received", len(lines), "lines; seqs", seqs[:5], "...", seqs[-5:])
    check_equal(numbers, list(range(first, first + count)), "test message numbers in order")
    check_equal(len(set(seqs)), len(seqs), "distinct message ids")
    check_equal(seqs, sorted(seqs), "message ids in order")


def check_at_least_once(ctx, lines, wanted):
    """Every wanted number present; first arrivals in order; returns the
    number of duplicates."""
    _, numbers = seqs_and_numbers(lines)
    first_seen = []
    for n in numbers:
        if n not in first_seen:
            first_seen.append(n)
    missing = sorted(set(wanted) - set(numbers))
    check(not missing, f"{len(missing)} messages lost, first {missing[:10]}")
    check_equal([n for n in first_seen if n in set(wanted)], sorted(wanted),
                "first arrivals in order")
    dups = len(numbers) - len(set(numbers))
    ctx.log("duplicates:", dups)
    return dups


def outbox_rows(ctx):
    path = os.path.join(ctx.work, "data", "outbox-e2e.db")
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        db.close()


@case("tls delivers every event once in order", only="vigil")
def tls_in_order(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "tls")
    out = siem_send(ctx, r, "--server-name", "siem.test", events=300)
    check("sent 300 pending 0" in out, f"siem-send counters: {out}")
    lines = r.wait_lines(300)
    check_equal(len(lines), 300, "lines received")
    check_exactly_once(ctx, lines, 1, 300)
    check(lines[0].startswith("<166>1 "), f"PRI and VERSION of an auth_success: {lines[0][:20]}")
    check(re.match(r"<16[46]>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z vigil-e2e vigil \d+ "
                   r"auth_(success|failure) \[vigil@32473 ", lines[1]) is not None,
          f"RFC 5424 header: {lines[1][:120]}")


@case("tls verifies the receiver address SAN", only="vigil")
def tls_ip_san(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "tls")
    siem_send(ctx, r, events=5)
    check_exactly_once(ctx, r.wait_lines(5), 1, 5)


@case("tls rejects wrong name then delivers", only="vigil")
def tls_wrong_name(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "tls")
    out = siem_send(ctx, r, "--server-name", "other.test", events=5, wait=3, check_status=1)
    check("sent 0 pending 5" in out, f"siem-send counters: {out}")
    check_equal(outbox_rows(ctx), 5, "rows kept in the outbox")
    time.sleep(0.5)
    check_equal(r.lines(), [], "lines received by rsyslog")
    siem_send(ctx, r, "--server-name", "siem.test", events=0)
    check_exactly_once(ctx, r.wait_lines(5), 1, 5)


@case("tls rejects a receiver of another CA", only="vigil")
def tls_wrong_ca(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "tls")
    out = siem_send(ctx, r, "--ca-file", os.path.join(ctx.fixture.pki, "other.pem"),
                    events=3, wait=3, check_status=1)
    check("sent 0 pending 3" in out, f"siem-send counters: {out}")
    check_equal(r.lines(), [], "lines received by rsyslog")


@case("tls receiver restart loses nothing", only="vigil")
def tls_restart(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "tls")
    siem_send(ctx, r, events=20)
    check_exactly_once(ctx, r.wait_lines(20), 1, 20)
    r.stop()
    proc = siem_send(ctx, r, "--first", 21, "--backoff-max-ms", 1000, events=100, wait=60,
                     background=True)
    time.sleep(3)
    check(proc.poll() is None, "siem-send exited while the receiver was down")
    r.start()
    out, err = proc.communicate(timeout=90)
    ctx.log("exit", proc.returncode, "stdout:", out.strip(), "stderr:", err[-3000:])
    check_no_sanitizer(err)
    check_equal(proc.returncode, 0, "siem-send exit status")
    check(re.search(r"connect_failures [1-9]", out) is not None,
          f"connect failures while the receiver was down: {out}")
    lines = r.wait_lines(120)
    check_at_least_once(ctx, lines, range(1, 121))


@case("outbox keeps messages across exporter exits", only="vigil")
def outbox_across_exit(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "tls")
    r.stop()
    out = siem_send(ctx, r, events=40, wait=0)
    check("stored 40" in out, f"siem-send counters: {out}")
    check_equal(outbox_rows(ctx), 40, "rows in the outbox after exit")
    r.start()
    siem_send(ctx, r, "--first", 41, events=10)
    lines = r.wait_lines(50)
    check_exactly_once(ctx, lines, 1, 50)
    check_equal(outbox_rows(ctx), 0, "rows in the outbox after delivery")


@case("tcp octet counting delivers in order", only="vigil")
def tcp_in_order(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "tcp")
    siem_send(ctx, r, events=200)
    lines = r.wait_lines(200)
    check_equal(len(lines), 200, "lines received")
    check_exactly_once(ctx, lines, 1, 200)


@case("tcp receiver restart loses nothing", only="vigil")
def tcp_restart(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "tcp")
    siem_send(ctx, r, events=10)
    r.stop()
    proc = siem_send(ctx, r, "--first", 11, "--backoff-max-ms", 1000, events=50, wait=60,
                     background=True)
    time.sleep(2)
    r.start()
    out, err = proc.communicate(timeout=90)
    ctx.log("exit", proc.returncode, "stdout:", out.strip(), "stderr:", err[-3000:])
    check_no_sanitizer(err)
    check_equal(proc.returncode, 0, "siem-send exit status")
    check_at_least_once(ctx, r.wait_lines(60), range(1, 61))


@case("udp delivers one message per datagram", only="vigil")
def udp_datagrams(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "udp")
    out = siem_send(ctx, r, events=20)
    check("sent 20 pending 0" in out, f"siem-send counters: {out}")
    lines = r.wait_lines(20)
    # UDP is best effort; on loopback with 20 datagrams none is expected lost.
    check_exactly_once(ctx, lines, 1, 20)


def parse_cef(line):
    """Returns (header fields, extension dict) of the CEF body in a line."""
    body = line[line.index("CEF:0|"):]
    fields, cur, i = [], "", 0
    while len(fields) < 7:
        ch = body[i]
        if ch == "\\":
            cur += body[i + 1]
            i += 2
            continue
        if ch == "|":
            fields.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    ext = {}
    for m in re.finditer(r"(\w+)=((?:\\.|[^\\=])*?)(?= \w+=|$)", body[i:]):
        ext[m.group(1)] = re.sub(r"\\(.)", lambda x: {"n": "\n", "r": "\r"}.get(x.group(1),
                                                                             x.group(1)),
                                 m.group(2))
    return fields, ext


@case("cef messages parse", only="vigil")
def cef_format(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "tcp")
    siem_send(ctx, r, "--format", "cef", "--alerts", 1, events=4)
    lines = r.wait_lines(5)
    check_equal(len(lines), 5, "lines received")
    for k, line in enumerate(lines[:4], start=1):
        fields, ext = parse_cef(line)
        kind = "auth_success" if k % 2 == 1 else "auth_failure"
        check_equal(fields[:4], ["CEF:0", "vigil", "vigil", "0.1.0"], "CEF header")
        check_equal(fields[4], kind, "signature id")
        check_equal(fields[6], "1" if k % 2 == 1 else "5", "CEF severity")
        check_equal(ext.get("externalId"), str(k), "externalId")
        check_equal(ext.get("cs1"), f"siem-test-{k}", "cs1 client id")
        check_equal(ext.get("src"), "127.0.0.1", "src")
        check_equal(ext.get("msg"), f"siem test event {k}", "msg")
    fields, ext = parse_cef(lines[4])
    check_equal(fields[4], "brute_force", "alert signature id")
    check_equal(fields[6], "8", "alert CEF severity")
    check_equal(ext.get("cs1"), "siem-test-alert-5", "alert id")


@case("ocsf json from a config file", only="vigil")
def ocsf_format(ctx):
    r = ctx.fixture.start_rsyslog(ctx, "tls")
    config = os.path.join(ctx.work, "vigil.yaml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(f"""data_dir: {ctx.work}/data
siem:
  hostname: vigil-e2e
  destinations:
    - name: other
      transport: udp
      address: "127.0.0.1:9"
    - name: e2e
      transport: tls
      address: "127.0.0.1:{r.port}"
      format: ocsf-json
      ca_file: {ctx.fixture.pki}/ca.pem
      server_name: siem.test
""")
    cmd = [vigil_binary(), "siem-send", "--config", config, "--dest", "e2e", "--events", "4",
           "--alerts", "2", "--wait", "30"]
    ctx.log("run:", " ".join(cmd))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    ctx.log("exit", out.returncode, "stdout:", out.stdout.strip(), "stderr:", out.stderr[-3000:])
    check_no_sanitizer(out.stderr)
    check_equal(out.returncode, 0, "siem-send exit status")
    check(os.path.exists(os.path.join(ctx.work, "data", "outbox-e2e.db")),
          "outbox-e2e.db in the configured data_dir")
    lines = r.wait_lines(6)
    check_equal(len(lines), 6, "lines received")
    objs = [json.loads(line[line.index("{"):]) for line in lines]
    for k, obj in enumerate(objs[:4], start=1):
        check_equal(obj["class_uid"], 3002, "class_uid")
        check_equal(obj["activity_id"], 1, "activity_id")
        check_equal(obj["status_id"], 1 if k % 2 == 1 else 2, "status_id")
        check_equal(obj["user"]["uid"], f"siem-test-{k}", "user.uid")
        check_equal(obj["src_endpoint"], {"ip": "127.0.0.1", "port": 10000 + k},
                    "src_endpoint")
        check_equal(obj["metadata"]["product"]["name"], "vigil", "metadata.product.name")
        check_equal(obj["metadata"]["uid"], str(k), "metadata.uid")
        check(abs(obj["time"] - time.time() * 1000) < 120000, f"time in ms: {obj['time']}")
    for k, obj in enumerate(objs[4:], start=5):
        check_equal(obj["class_uid"], 2004, "class_uid")
        check_equal(obj["severity_id"], 4, "severity_id")
        check_equal(obj["finding_info"]["uid"], f"siem-test-alert-{k}", "finding_info.uid")
        check_equal(obj["finding_info"]["title"], f"siem test alert {k}", "finding_info.title")
        check_equal(obj["evidences"][0]["data"]["event"], f"test evidence {k}", "evidence")


if __name__ == "__main__":
    sys.exit(harness.run("e2e/siem", Fixture))
