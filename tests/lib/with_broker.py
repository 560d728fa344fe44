#!/usr/bin/python3
"""Run a command against a fresh broker, then stop the broker and check it.

Usage: with_broker.py --suite NAME [--no-anonymous] -- COMMAND [ARG...]

The command gets VIGIL_TEST_PORT, VIGIL_TEST_DATA_DIR, VIGIL_TEST_EVENTS,
VIGIL_TEST_TARGET and VIGIL_TEST_SUITE_DIR (its log directory). A broker
that crashed, hung on SIGTERM or printed sanitizer errors is recorded as one
failed case. The exit status is the command's, or 1 when the broker failed.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from broker import Broker, BrokerError, target  # noqa: E402
from harness import exit_on_sigterm, record  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", required=True)
    parser.add_argument("--no-anonymous", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command is required after --")

    suite_dir = os.path.join(os.environ.get("VIGIL_TEST_LOG_DIR", "/tmp/vigil-test-logs"),
                             args.suite.replace("/", "-"))
    os.makedirs(suite_dir, exist_ok=True)
    exit_on_sigterm()
    broker = Broker(suite_dir, name="broker", anonymous=not args.no_anonymous)
    failure = None
    rc = 1
    try:
        broker.start()
        env = dict(os.environ, VIGIL_TEST_PORT=str(broker.port), VIGIL_TEST_DATA_DIR=broker.data_dir,
                   VIGIL_TEST_EVENTS=broker.events_path, VIGIL_TEST_TARGET=target(),
                   VIGIL_TEST_SUITE_DIR=suite_dir)
        rc = subprocess.run(command, env=env).returncode
        broker.stop()
    except BrokerError as exc:
        failure = str(exc)
    finally:
        if broker.proc is not None:
            broker.proc.kill()
            broker.proc.wait()
    if failure:
        path = os.path.join(suite_dir, "broker-failure.log")
        with open(path, "w", encoding="utf-8") as f:
            f.write(failure + "\n\nbroker stderr tail:\n" + broker.stderr_tail())
        name = f"{args.suite}/broker crash or shutdown"
        print(f"FAIL {name} (log: {path})", flush=True)
        record("fail", name, path)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
