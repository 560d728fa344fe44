#!/usr/bin/python3
"""The audit log through the real binary. `vigil audit append` writes logs,
and the cases tamper with them the way an intruder or a crash would. Then
`vigil audit verify` must name the first bad record with exit status 1,
report crash artefacts as warnings with status 0, and reject wrong usage
with status 2.

The last cases run `vigil device`, `vigil acl` and `vigil alerts` with
and without a running `vigil serve` and check that each change is in the
log with the user who made it, spooled while the hub holds the log.

Usage: /usr/bin/python3 tests/e2e/audit/run.py [NAME-SUBSTRING...]
Every case is vigil-only and skipped against mosquitto.
"""

import hashlib
import json
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))

import harness  # noqa: E402
from broker import SANITIZER_PATTERNS, Broker, vigil_binary  # noqa: E402
from harness import case, check, check_equal  # noqa: E402

SEG1 = "audit-000001.jsonl"
SEG2 = "audit-000002.jsonl"


class Fixture:
    def __init__(self, log_dir):
        self.log_dir = log_dir

    def before(self, c, ctx):
        ctx.work = os.path.join(self.log_dir, f"{c.number:03d}")
        shutil.rmtree(ctx.work, ignore_errors=True)
        os.makedirs(ctx.work)
        ctx.audit = os.path.join(ctx.work, "audit")

    def after(self, c, ctx):
        pass

    def on_failure(self, c, ctx, exc):
        pass

    def close(self):
        pass


def vigil(ctx, *args):
    """Run vigil; log and return (status, stdout). Sanitizer output fails the case."""
    cmd = [vigil_binary(), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    ctx.log("$", " ".join(cmd), "->", proc.returncode)
    ctx.log("stdout:\n" + proc.stdout + "stderr:\n" + proc.stderr)
    check(not SANITIZER_PATTERNS.search(proc.stderr), "sanitizer report in vigil's stderr")
    return proc.returncode, proc.stdout


def append(ctx, count=1, rtype="auth_failure", fields=None, *extra):
    fields = fields or {"device": "mon-0042", "peer": "127.0.0.1:5000"}
    status, _ = vigil(ctx, "audit", "append", "--type", rtype, "--json", json.dumps(fields),
                      "--count", str(count), *extra, ctx.audit)
    check_equal(status, 0, "status of vigil audit append")


def verify(ctx, *args):
    return vigil(ctx, "audit", "verify", *args, ctx.audit)


def expect_invalid(ctx, text, *args):
    status, out = verify(ctx, *args)
    check_equal(status, 1, "status of vigil audit verify")
    check(f"audit log invalid: {text}" in out, f"expected 'audit log invalid: {text}' in {out!r}")


def read_lines(ctx, name=SEG1):
    with open(os.path.join(ctx.audit, name), encoding="utf-8") as f:
        return f.read().splitlines()


def write_lines(ctx, lines, name=SEG1):
    with open(os.path.join(ctx.audit, name), "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


@case("valid log verifies", only="vigil")
def valid_log(ctx):
    append(ctx, 10)
    status, out = verify(ctx)
    check_equal(status, 0, "status")
    check(out.startswith("audit log valid: 11 records (1 checkpoints) in 1 segments"), out)
    status, out = verify(ctx, "--json", "--strict")
    check_equal(status, 0, "status with --strict")
    report = json.loads(out)
    check_equal(report["valid"], True, "valid")
    check_equal(report["last_seq"], 11, "last_seq")
    check_equal(report["warnings"], [], "warnings")


@case("pinned public key verifies", only="vigil")
def pinned_key(ctx):
    append(ctx, 3)
    pub = os.path.join(ctx.work, "kept-elsewhere.pub")
    shutil.copy(os.path.join(ctx.audit, "signing.pub"), pub)
    status, out = verify(ctx, "--pubkey", pub)
    check_equal(status, 0, "status")
    check("note:" not in out, "no note about an unpinned key")


@case("edited field names the record", only="vigil")
def edited_field(ctx):
    append(ctx, 5)
    lines = read_lines(ctx)
    lines[2] = lines[2].replace("mon-0042", "mon-0043")
    write_lines(ctx, lines)
    expect_invalid(ctx, f"{SEG1}:3 (seq 3): hash mismatch: record changed")


@case("deleted line is a seq gap", only="vigil")
def deleted_line(ctx):
    append(ctx, 5)
    lines = read_lines(ctx)
    del lines[2]
    write_lines(ctx, lines)
    expect_invalid(ctx, f"{SEG1}:3 (seq 4): seq gap: expected 3, found 4 (records removed")


@case("reordered lines are detected", only="vigil")
def reordered_lines(ctx):
    append(ctx, 5)
    lines = read_lines(ctx)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(ctx, lines)
    expect_invalid(ctx, f"{SEG1}:2 (seq 3): seq gap: expected 2, found 3")


@case("inserted line is detected", only="vigil")
def inserted_line(ctx):
    append(ctx, 5)
    lines = read_lines(ctx)
    lines.insert(3, lines[1])
    write_lines(ctx, lines)
    expect_invalid(ctx, f"{SEG1}:4 (seq 2): seq out of order: expected 4, found 2")


@case("torn last line is a warning", only="vigil")
def torn_tail(ctx):
    append(ctx, 5)
    path = os.path.join(ctx.audit, SEG1)
    os.truncate(path, os.path.getsize(path) - 25)
    status, out = verify(ctx)
    check_equal(status, 0, "status without --strict")
    check(f"warning: torn last line at {SEG1}:6 (crash during write?)" in out, out)
    status, out = verify(ctx, "--strict")
    check_equal(status, 1, "status with --strict")
    check("audit log invalid: --strict: torn last line" in out, out)


@case("append after a torn line keeps it", only="vigil")
def torn_then_append(ctx):
    append(ctx, 5)
    path = os.path.join(ctx.audit, SEG1)
    os.truncate(path, os.path.getsize(path) - 25)
    with open(path, "rb") as f:
        torn = f.read()
    append(ctx, 2)
    with open(path, "rb") as f:
        check_equal(f.read(), torn, "first segment after the reopen")
    check(os.path.exists(os.path.join(ctx.audit, SEG2)), "a new segment after the torn one")
    status, out = verify(ctx)
    check_equal(status, 0, "status")
    check("in 2 segments, last seq 8" in out, out)
    check(f"torn last line at {SEG1}:6" in out, out)


def no_room():
    """Child setup that fails every file write as a full disk would."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


@case("full disk is logged once and adds no segment", only="vigil")
def full_disk(ctx):
    append(ctx, 3)
    cmd = [vigil_binary(), "audit", "append", "--type", "auth_failure", "--count", "3", ctx.audit]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, preexec_fn=no_room)
    ctx.log("$", " ".join(cmd), "(file size limit 0) ->", proc.returncode)
    ctx.log("stderr:\n" + proc.stderr)
    check_equal(proc.returncode, 1, "status of the append that cannot write")
    check(f"audit: write to {os.path.join(ctx.audit, SEG1)} failed: File too large" in proc.stderr,
          proc.stderr)
    check_equal(proc.stderr.count("failed:"), 1, "failure lines")
    check("closing while writes fail; records not written: 1" in proc.stderr, proc.stderr)
    check(not os.path.exists(os.path.join(ctx.audit, SEG2)), "no new segment")
    append(ctx, 2)
    status, out = verify(ctx, "--strict")
    check_equal(status, 0, "status with --strict")
    check("in 1 segments, last seq 7" in out, out)


@case("full disk at the first open leaves no key file", only="vigil")
def full_disk_first_open(ctx):
    cmd = [vigil_binary(), "audit", "append", "--type", "auth_failure", ctx.audit]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, preexec_fn=no_room)
    ctx.log("$", " ".join(cmd), "(file size limit 0) ->", proc.returncode)
    ctx.log("stderr:\n" + proc.stderr)
    check_equal(proc.returncode, 1, "status of the append that cannot write the key")
    check("signing.key: File too large" in proc.stderr, proc.stderr)
    check(not os.path.exists(os.path.join(ctx.audit, "signing.key")), "no key file left")
    append(ctx, 2)
    status, out = verify(ctx, "--strict")
    check_equal(status, 0, "status with --strict")
    check("last seq 3" in out, out)


def size_limit(limit):
    """Return a child setup that sets a file size limit. SIGXFSZ keeps its
    default action, so a write past the limit kills a process that does not
    ignore the signal."""
    def setup():
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    return setup


def segment_sizes(audit_dir):
    return [os.path.getsize(os.path.join(audit_dir, n))
            for n in sorted(os.listdir(audit_dir)) if n.startswith("audit-")]


@case("file size limit ends segments without torn lines", only="vigil")
def file_size_limit(ctx):
    append(ctx, 3)
    limit = os.path.getsize(os.path.join(ctx.audit, SEG1)) + 100
    cmd = [vigil_binary(), "audit", "append", "--type", "auth_failure", "--count", "10", ctx.audit]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          preexec_fn=size_limit(limit))
    ctx.log("$", " ".join(cmd), f"(file size limit {limit}) ->", proc.returncode)
    ctx.log("stderr:\n" + proc.stderr)
    check_equal(proc.returncode, 0, "status of the append under the limit")
    check_equal(proc.stderr.count("segments end at the limit"), 1, "lines about the limit")
    check("failed" not in proc.stderr, proc.stderr)
    sizes = segment_sizes(ctx.audit)
    check(len(sizes) > 2, f"segments ended at the limit: {sizes}")
    check(max(sizes) <= limit, f"segment sizes {sizes} within the limit {limit}")
    status, out = verify(ctx, "--strict")
    check_equal(status, 0, "status with --strict")
    check("last seq 15" in out, out)


@case("hub under a file size limit keeps its log whole", only="vigil")
def hub_size_limit(ctx):
    hub = Broker(ctx.work, name="hub", anonymous=True)
    ctx.defer(lambda: hub.stop() if hub.alive() else None)
    hub.start()
    audit_dir = os.path.join(hub.data_dir, "audit")
    admin_ok(ctx, "device", "add", "mon-0009", "--data-dir", hub.data_dir, "-q")
    wrong_logins(ctx, hub.port, "mon-0009", 2)
    time.sleep(1.5)
    limit = max(segment_sizes(audit_dir)) + 50
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.prlimit(hub.proc.pid, resource.RLIMIT_FSIZE, (limit, hard))
    ctx.log(f"file size limit of the hub: {limit}")
    wrong_logins(ctx, hub.port, "mon-0009", 10)
    time.sleep(1.5)
    hub.check_alive()
    resource.prlimit(hub.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))
    hub.stop()
    sizes = segment_sizes(audit_dir)
    check(len(sizes) > 1, f"segments ended at the limit: {sizes}")
    status, out = vigil(ctx, "audit", "verify", "--strict", audit_dir)
    check_equal(status, 0, "status of vigil audit verify --strict")


@case("records removed at the end", only="vigil")
def removed_at_end(ctx):
    append(ctx, 5)
    write_lines(ctx, read_lines(ctx)[:4])
    status, out = verify(ctx)
    check_equal(status, 0, "status without --strict")
    check("warning: 4 records are not signed yet" in out, out)
    status, _ = verify(ctx, "--strict")
    check_equal(status, 1, "status with --strict")


@case("rewrite with a new key fails a pinned check", only="vigil")
def key_replaced(ctx):
    append(ctx, 3)
    pub = os.path.join(ctx.work, "original.pub")
    shutil.copy(os.path.join(ctx.audit, "signing.pub"), pub)
    shutil.rmtree(ctx.audit)
    append(ctx, 3)
    status, _ = verify(ctx)
    check_equal(status, 0, "status with the directory's own key")
    expect_invalid(ctx, f"{SEG1}:4 (seq 4): checkpoint signed by key", "--pubkey", pub)


@case("forged signature is invalid", only="vigil")
def forged_signature(ctx):
    append(ctx, 3)
    lines = read_lines(ctx)
    rec = json.loads(lines[3])
    sig = rec["sig"]
    rec["sig"] = ("B" if sig[0] == "A" else "A") + sig[1:]
    del rec["hash"]
    canonical = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    rec["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    lines[3] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
    write_lines(ctx, lines)
    expect_invalid(ctx, f"{SEG1}:4 (seq 4): signature invalid at checkpoint seq 4")


@case("tamper in a later segment", only="vigil")
def later_segment(ctx):
    append(ctx, 20, "auth_failure", None, "--segment-size", "800", "--checkpoint-every", "5")
    status, out = verify(ctx, "--strict")
    check_equal(status, 0, "status before tampering")
    lines = read_lines(ctx, SEG2)
    lines[1] = lines[1].replace("127.0.0.1", "127.0.0.2")
    write_lines(ctx, lines, SEG2)
    expect_invalid(ctx, f"{SEG2}:2 (seq ")
    status, out = verify(ctx)
    check("hash mismatch: record changed" in out, out)


@case("removed segment is detected", only="vigil")
def removed_segment(ctx):
    append(ctx, 20, "auth_failure", None, "--segment-size", "800")
    os.unlink(os.path.join(ctx.audit, SEG2))
    expect_invalid(ctx, f"{SEG2} is missing (segments removed)")


@case("tail prints the last records", only="vigil")
def tail_last(ctx):
    append(ctx, 4, "admin_command", {"command": "note", "text": "shift change"})
    status, out = vigil(ctx, "audit", "tail", "-n", "2", ctx.audit)
    check_equal(status, 0, "status")
    records = [json.loads(line) for line in out.splitlines()]
    check_equal([r["seq"] for r in records], [4, 5], "seq of the printed records")
    check_equal(records[1]["type"], "checkpoint", "type of the last record")


@case("usage errors exit 2", only="vigil")
def usage_errors(ctx):
    append(ctx, 1)
    check_equal(vigil(ctx, "audit", "verify", "--bogus", ctx.audit)[0], 2, "unknown option")
    check_equal(vigil(ctx, "audit", "verify", ctx.audit, ctx.audit)[0], 2, "two directories")
    check_equal(vigil(ctx, "audit", "frobnicate")[0], 2, "unknown command")
    check_equal(vigil(ctx, "audit", "append", "--type", "Bad Type", ctx.audit)[0], 2, "bad type")
    check_equal(vigil(ctx, "audit", "append", "--type", "note", "--json", '{"seq":1}',
                      ctx.audit)[0], 2, "reserved member")
    check_equal(vigil(ctx, "audit", "tail", "-n", "0", ctx.audit)[0], 2, "tail -n 0")
    check_equal(vigil(ctx, "audit", "verify", "--help")[0], 0, "--help")


@case("missing directory is invalid", only="vigil")
def missing_dir(ctx):
    status, out = verify(ctx)
    check_equal(status, 1, "status")
    check("audit log invalid: cannot read" in out, out)


# -- administrative commands ------------------------------------------------

ADMIN_ALERT_WAIT_S = 20.0


def audit_records(ctx, audit_dir):
    """Return every record of the log except checkpoints, via vigil audit tail."""
    status, out = vigil(ctx, "audit", "tail", "-n", "1000", audit_dir)
    check_equal(status, 0, "status of vigil audit tail")
    return [r for r in map(json.loads, out.splitlines()) if r["type"] != "checkpoint"]


def admin_ok(ctx, *args):
    status, out = vigil(ctx, *args)
    check_equal(status, 0, f"status of vigil {' '.join(args[:2])}")
    return out


def find_record(records, rtype, **fields):
    for r in records:
        if r["type"] == rtype and all(r.get(k) == v for k, v in fields.items()):
            return r
    raise AssertionError(f"no {rtype} record with {fields} among "
                         f"{[r['type'] for r in records]}")


def check_admin_record(record, user, spooled):
    check_equal(record["user"], user, f"user of {record['type']}")
    check(record["requested_at"].endswith("Z"), f"requested_at of {record['type']}")
    check_equal("spool_file" in record, spooled, f"spool_file present in {record['type']}")


def wrong_logins(ctx, port, device, count):
    for i in range(count):
        out = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-i",
                              f"guess-{i}", "-u", device, "-P", f"wrong-{i}", "-t",
                              f"north/icu3/room1/{device}/x", "-m", "1"],
                             capture_output=True, text=True, timeout=30)
        ctx.log("mosquitto_pub", i, out.returncode, out.stderr.strip())
        check(out.returncode != 0, "a wrong password was accepted")


def wait_alert(ctx, data_dir, rule):
    deadline = time.monotonic() + ADMIN_ALERT_WAIT_S
    while time.monotonic() < deadline:
        out = admin_ok(ctx, "alerts", "list", "--json", "--data-dir", data_dir)
        for alert in json.loads(out):
            if alert["rule"] == rule:
                return alert["alert_id"]
        time.sleep(0.5)
    raise AssertionError(f"no {rule} alert within {ADMIN_ALERT_WAIT_S} s")


def spool_files(data_dir):
    spool = os.path.join(data_dir, "audit", "spool")
    if not os.path.isdir(spool):
        return []
    return sorted(n for n in os.listdir(spool) if n.endswith(".json"))


@case("admin commands beside a hub are spooled", only="vigil")
def admin_beside_hub(ctx):
    user = pwd.getpwuid(os.geteuid()).pw_name
    hub = Broker(ctx.work, name="hub", anonymous=True)
    ctx.defer(lambda: hub.stop() if hub.alive() else None)
    hub.start()
    data = hub.data_dir
    password = admin_ok(ctx, "device", "add", "mon-0007", "--data-dir", data, "-q").strip()
    check("password" not in password and password, "device add printed a password")
    admin_ok(ctx, "acl", "add", "--device", "mon-0007", "--publish", "north/+/+/%d/#",
             "--data-dir", data)
    wrong_logins(ctx, hub.port, "mon-0007", 8)
    alert_id = wait_alert(ctx, data, "brute_force")
    admin_ok(ctx, "alerts", "ack", alert_id, "--data-dir", data)
    admin_ok(ctx, "device", "revoke", "mon-0007", "--data-dir", data)
    time.sleep(2.5)
    check_equal(spool_files(data), [], "spool files left while the hub runs")
    hub.stop()

    audit_dir = os.path.join(data, "audit")
    status, out = vigil(ctx, "audit", "verify", audit_dir)
    check_equal(status, 0, "status of vigil audit verify")
    records = audit_records(ctx, audit_dir)
    added = find_record(records, "device_added", device="mon-0007")
    check_equal(added["credentials"], ["password", "certificate"], "credentials")
    issued = find_record(records, "cert_issued", device="mon-0007")
    rule = find_record(records, "acl_rule_added", subject="mon-0007")
    check_equal(rule["pattern"], "north/+/+/%d/#", "pattern of the rule")
    acked = find_record(records, "alert_acknowledged", alert_id=alert_id)
    revoked = find_record(records, "cert_revoked", device="mon-0007")
    check_equal(revoked["certificates_revoked"], 1, "certificates revoked")
    for record in (added, issued, rule, acked, revoked):
        check_admin_record(record, user, True)
    order = [r["type"] for r in records if r["type"] in
             ("device_added", "cert_issued", "acl_rule_added", "alert_acknowledged",
              "cert_revoked")]
    check_equal(order, ["device_added", "cert_issued", "acl_rule_added",
                        "alert_acknowledged", "cert_revoked"], "order of the records")
    with open(os.path.join(audit_dir, SEG1), encoding="utf-8") as f:
        check(password not in f.read(), "the device password is in the audit log")


@case("admin commands without a hub append", only="vigil")
def admin_without_hub(ctx):
    user = pwd.getpwuid(os.geteuid()).pw_name
    data = os.path.join(ctx.work, "data")
    admin_ok(ctx, "device", "add", "mon-0008", "--data-dir", data, "--psk", "-q")
    admin_ok(ctx, "acl", "add", "--device", "mon-0008", "--subscribe", "north/#",
             "--data-dir", data)
    admin_ok(ctx, "acl", "remove", "1", "--data-dir", data)
    admin_ok(ctx, "device", "rotate", "mon-0008", "--overlap", "0", "--data-dir", data)
    admin_ok(ctx, "device", "remove", "mon-0008", "--data-dir", data)

    audit_dir = os.path.join(data, "audit")
    status, out = vigil(ctx, "audit", "verify", "--strict", audit_dir)
    check_equal(status, 0, "status of vigil audit verify --strict")
    records = audit_records(ctx, audit_dir)
    check_equal([r["type"] for r in records],
                ["device_added", "cert_issued", "acl_rule_added", "acl_rule_removed",
                 "cert_rotated", "device_removed", "cert_revoked"], "record types")
    for record in records:
        check_admin_record(record, user, False)
    check_equal(records[0]["credentials"], ["password", "psk", "certificate"], "credentials")
    check_equal(records[3]["pattern"], "north/#", "pattern of the removed rule")
    check_equal(records[4]["previous_serial"], records[1]["serial"], "previous serial")
    check_equal(spool_files(data), [], "spool files")


@case("spool left without a hub is appended at start", only="vigil")
def spool_at_start(ctx):
    hub = Broker(ctx.work, name="hub", anonymous=True)
    ctx.defer(lambda: hub.stop() if hub.alive() else None)
    spool = os.path.join(hub.data_dir, "audit", "spool")
    os.makedirs(spool, mode=0o700)
    record = {"type": "alert_resolved", "fields": {"alert_id": "a-left"},
              "requested_at": "2026-01-02T03:04:05.000000Z", "user": "operator"}
    with open(os.path.join(spool, "1767323045000000-4242-000000.json"), "w") as f:
        json.dump(record, f)
    with open(os.path.join(spool, "1767323046000000-4242-000000.json"), "w") as f:
        f.write("{not json")
    hub.start()
    hub.stop()

    audit_dir = os.path.join(hub.data_dir, "audit")
    status, _ = vigil(ctx, "audit", "verify", audit_dir)
    check_equal(status, 0, "status of vigil audit verify")
    records = audit_records(ctx, audit_dir)
    resolved = find_record(records, "alert_resolved", alert_id="a-left")
    check_equal(resolved["user"], "operator", "user")
    check_equal(resolved["requested_at"], record["requested_at"], "requested_at")
    rejected = find_record(records, "spool_rejected")
    check_equal(rejected["spool_file"], "1767323046000000-4242-000000.json", "rejected file")
    check_equal(spool_files(hub.data_dir), [], "spool files")
    check_equal(os.listdir(os.path.join(spool, "rejected")),
                ["1767323046000000-4242-000000.json"], "files in spool/rejected")


if __name__ == "__main__":
    sys.exit(harness.run("e2e/audit", Fixture))
