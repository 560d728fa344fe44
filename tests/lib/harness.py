"""A small test runner shared by the Python suites.

Cases are registered with @case, numbered in order of definition, and run
one after another. Each case gets its own log file. Results go to stdout as
"PASS name" / "FAIL name (log: path)" / "SKIP name (reason)" and, when
VIGIL_TEST_RESULTS is set, are appended to that file as tab-separated
"pass|fail|skip, name, log path" lines for tests/run.sh to count.
"""

import os
import signal
import sys
import time
import traceback

from broker import BrokerError, target

CASES = []


class Case:
    def __init__(self, func, name, only, needs):
        self.func = func
        self.name = name
        self.only = only
        self.needs = needs
        self.number = len(CASES) + 1


def case(name, only=None, needs=None):
    """Register a test case.

    only: "vigil" for behaviour that deliberately differs from mosquitto.
    needs: a key the suite's fixture uses to pick a broker configuration.
    """
    def register(func):
        CASES.append(Case(func, name, only, needs))
        return func
    return register


class Context:
    """The state passed to a case: its log, the suite's fixture, and the target."""

    def __init__(self, log_path, fixture):
        self.log_path = log_path
        self._log = open(log_path, "w", encoding="utf-8")
        self.fixture = fixture
        self.target = target()
        self.vigil = self.target == "vigil"
        self.cleanups = []

    def log(self, *parts):
        stamp = time.strftime("%H:%M:%S")
        self._log.write(f"[{stamp}] " + " ".join(str(p) for p in parts) + "\n")
        self._log.flush()

    def defer(self, fn, *args):
        """Run fn(*args) after the case, even when it fails."""
        self.cleanups.append((fn, args))

    def close(self):
        errors = []
        for fn, args in reversed(self.cleanups):
            try:
                fn(*args)
            except Exception as exc:  # cleanup failures are reported, not raised
                errors.append(exc)
                self.log("cleanup failed:", repr(exc))
        self.cleanups = []
        self._log.close()
        return errors


def slug(text):
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60]


def exit_on_sigterm():
    """Turn SIGTERM (sent by tests/run.sh's time limit) into SystemExit, so
    finally blocks stop the brokers this process started."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def record(kind, name, log_path):
    results = os.environ.get("VIGIL_TEST_RESULTS")
    if results:
        with open(results, "a", encoding="utf-8") as f:
            f.write(f"{kind}\t{name}\t{log_path}\n")


def run(suite, fixture_factory, argv=None):
    """Run every registered case of suite; return the process exit status.

    fixture_factory(log_dir) returns an object with before(case, ctx),
    after(case, ctx) and close() methods; it owns the brokers.
    argv: substrings; when given, only cases whose name contains one run.
    """
    argv = sys.argv[1:] if argv is None else argv
    # A second pass of a suite in another configuration gets its own names.
    suite = os.environ.get("VIGIL_TEST_SUITE_PREFIX", "") + suite
    filters = [a for a in argv if a]
    env_filter = os.environ.get("VIGIL_TEST_FILTER")
    if env_filter:
        filters.append(env_filter)
    log_dir = os.path.join(os.environ.get("VIGIL_TEST_LOG_DIR", "/tmp/vigil-test-logs"), suite)
    os.makedirs(log_dir, exist_ok=True)
    exit_on_sigterm()
    fixture = fixture_factory(log_dir)
    passed = failed = skipped = 0
    try:
        for c in CASES:
            full = f"{suite}/{c.number:03d} {c.name}"
            if filters and not any(f in full for f in filters):
                continue
            if c.only and c.only != target():
                print(f"SKIP {full} (runs only against {c.only})", flush=True)
                record("skip", full, "")
                skipped += 1
                continue
            log_path = os.path.join(log_dir, f"{c.number:03d}-{slug(c.name)}.log")
            ctx = Context(log_path, fixture)
            ok = True
            start = time.monotonic()
            try:
                ctx.log("case", full, "target", target())
                fixture.before(c, ctx)
                c.func(ctx)
                fixture.after(c, ctx)
            except Exception as exc:
                ok = False
                ctx.log("FAILED:", "".join(traceback.format_exception(exc)))
                try:
                    fixture.on_failure(c, ctx, exc)
                except Exception as exc2:
                    ctx.log("fixture recovery failed:", repr(exc2))
            if ctx.close():
                ok = False
            elapsed = time.monotonic() - start
            if ok:
                passed += 1
                print(f"PASS {full} ({elapsed:.1f} s)", flush=True)
                record("pass", full, log_path)
            else:
                failed += 1
                print(f"FAIL {full} (log: {log_path})", flush=True)
                record("fail", full, log_path)
    finally:
        try:
            fixture.close()
        except BrokerError as exc:
            failed += 1
            name = f"{suite}/broker shutdown"
            path = os.path.join(log_dir, "broker-shutdown.log")
            with open(path, "w", encoding="utf-8") as f:
                f.write(str(exc) + "\n")
            print(f"FAIL {name} (log: {path})", flush=True)
            record("fail", name, path)
    print(f"{suite}: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


class AssertionFailed(AssertionError):
    pass


def check(cond, message):
    if not cond:
        raise AssertionFailed(message)


def check_equal(actual, expected, what):
    if actual != expected:
        raise AssertionFailed(f"{what}: expected {expected!r}, got {actual!r}")
