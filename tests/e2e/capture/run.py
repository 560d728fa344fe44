#!/usr/bin/python3
"""Detection evaluation of `vigil analyze` on the labelled MQTTset captures.

Usage: /usr/bin/python3 tests/e2e/capture/run.py [--table] [NAME-SUBSTRING...]

Runs `vigil analyze --json` on one capture per class and checks that every
attack capture raises an alert of its kind and the benign capture none.
Per class it reports precision (alerts of the class's kind among all alerts
raised on its capture), recall (1 when the capture raised an alert of its
kind) and time to detect (first_seen of the first alert of the right kind
minus the first packet of the capture, in capture time). --table prints the
Markdown table of DETECTION.md. When the captures are absent every case is
recorded as skipped, never as passed.
"""

import calendar
import json
import os
import re
import subprocess
import sys
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from harness import record  # noqa: E402

CAPTURES = os.environ.get("VIGIL_CAPTURES",
                          os.path.join(ROOT, "..", "shared", "data", "captures", "mqttset-reduced"))
VIGIL = os.environ.get("VIGIL", os.path.join(ROOT, "build-asan", "vigil"))
SUITE = "e2e/capture"

# Class, capture file, the rules that count as detecting it.
CLASSES = [
    ("benign", "benign/benign-train.pcap", set()),
    ("bruteforce", "bruteforce/bruteforce-train.pcapng", {"brute_force"}),
    ("flood", "flood/flood-train.pcap", {"message_flood"}),
    ("malariados", "malariados/malariados-train.pcap", {"qos_flood", "message_flood"}),
    ("malformed", "malformed/malformed-train.pcap",
     {"malformed_burst", "sys_probe", "suspicious_topic"}),
    ("slowite", "slowite/slowite-train.pcap",
     {"slow_connections", "many_identities", "connection_churn"}),
]


def parse_time(text):
    """Returns microseconds since the epoch of an RFC 3339 UTC time."""
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(dt.timetuple()) * 10**6 + dt.microsecond


def analyze(path, log):
    """Runs vigil analyze --json; returns (alerts, first packet time in us)."""
    cmd = [VIGIL, "analyze", "--json", path]
    log.write("$ " + " ".join(cmd) + "\n")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    log.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise AssertionError(f"vigil analyze exited with status {proc.returncode}")
    alerts = [json.loads(line) for line in proc.stdout.splitlines()]
    match = re.search(r"capture:\s+(\S+) to", proc.stderr)
    if match is None:
        raise AssertionError("no capture time range in the summary on standard error")
    for a in alerts:
        for key in ("alert_id", "rule", "severity", "device", "source", "explanation",
                    "first_seen", "last_seen", "evidence", "observation", "expectation",
                    "deviation", "count"):
            if key not in a:
                raise AssertionError(f"alert without {key}: {a}")
    return alerts, parse_time(match.group(1))


def evaluate(name, rel, kinds, log):
    """Returns the row of one class; raises AssertionError when it fails."""
    alerts, first_us = analyze(os.path.join(CAPTURES, rel), log)
    right = [a for a in alerts if a["rule"] in kinds]
    rules = sorted({a["rule"] for a in alerts})
    row = {"class": name, "alerts": len(alerts), "right": len(right), "rules": rules,
           "precision": None, "recall": None, "ttd": None}
    if name == "benign":
        if alerts:
            raise AssertionError(f"benign capture raised {len(alerts)} alerts: {rules}")
        return row
    row["precision"] = len(right) / len(alerts) if alerts else 0.0
    row["recall"] = 1.0 if right else 0.0
    if not right:
        raise AssertionError(f"no alert of {sorted(kinds)} on {rel}; got {rules}")
    row["ttd"] = (min(parse_time(a["first_seen"]) for a in right) - first_us) / 1e6
    return row


def print_table(rows):
    print("| class | alerts | of the right kind | precision | recall | time to detect | rules raised |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        prec = "-" if r["precision"] is None else f"{r['precision']:.2f}"
        rec = "-" if r["recall"] is None else f"{r['recall']:.0f}"
        ttd = "-" if r["ttd"] is None else f"{r['ttd']:.3f} s"
        print(f"| {r['class']} | {r['alerts']} | {r['right']} | {prec} | {rec} | {ttd} | "
              f"{', '.join(r['rules']) or 'none'} |")


def main(argv):
    table = "--table" in argv
    filters = [a for a in argv if a != "--table"]
    env_filter = os.environ.get("VIGIL_TEST_FILTER")
    if env_filter:
        filters.append(env_filter)
    log_dir = os.path.join(os.environ.get("VIGIL_TEST_LOG_DIR", "/tmp/vigil-test-logs"), SUITE)
    os.makedirs(log_dir, exist_ok=True)
    passed = failed = skipped = 0
    rows = []
    for number, (name, rel, kinds) in enumerate(CLASSES, 1):
        full = f"{SUITE}/{number:03d} {name} capture"
        if filters and not any(f in full for f in filters):
            continue
        log_path = os.path.join(log_dir, f"{number:03d}-{name}.log")
        if not os.path.isfile(os.path.join(CAPTURES, rel)):
            print(f"SKIP {full} (capture {rel} not found under {CAPTURES})", flush=True)
            record("skip", full, "")
            skipped += 1
            continue
        with open(log_path, "w", encoding="utf-8") as log:
            try:
                rows.append(evaluate(name, rel, kinds, log))
                ok = True
            except (AssertionError, subprocess.SubprocessError, OSError, ValueError) as exc:
                log.write(f"FAILED: {exc}\n")
                ok = False
        if ok:
            passed += 1
            print(f"PASS {full}", flush=True)
            record("pass", full, log_path)
        else:
            failed += 1
            print(f"FAIL {full} (log: {log_path})", flush=True)
            record("fail", full, log_path)
    if table and rows:
        print_table(rows)
    print(f"{SUITE}: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
