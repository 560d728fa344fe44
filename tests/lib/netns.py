"""A private network namespace for tests that need fixed ports.

`vigil serve` without listener options binds its default ports (1883,
5683, 1884, ...). On the host they may be taken, or be in use by another
suite running at the same time, so such tests run vigil and its clients in
a network namespace of their own with only a loopback interface. The
namespace lives as long as a `sleep` process started with `unshare -n`
(or `unshare -rn`, which also makes a user namespace, where the caller
lacks CAP_SYS_ADMIN); commands join it with nsenter. Only the standard
library is used.
"""

import os
import shutil
import subprocess
import time


class NetnsError(Exception):
    """The namespace could not be created or entered."""


class Netns:
    """A network namespace with lo up, ended by close()."""

    def __init__(self):
        for tool in ("unshare", "nsenter", "ip"):
            if shutil.which(tool) is None:
                raise NetnsError(f"{tool} not found; install util-linux and iproute2")
        errors = []
        for unshare, enter in ((["-n"], ["-n"]),
                               (["-r", "-n"], ["-U", "--preserve-credentials", "-n"])):
            self.holder = subprocess.Popen(["unshare"] + unshare + ["sleep", "3600"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.enter = enter
            # unshare execs sleep once the namespace exists; poll until it has.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.holder.poll() is None:
                try:
                    if os.readlink(f"/proc/{self.holder.pid}/exe").endswith("sleep"):
                        break
                except OSError:
                    pass
                time.sleep(0.02)
            if self.holder.poll() is None:
                up = self.run(["ip", "link", "set", "lo", "up"])
                if up.returncode == 0:
                    return
                errors.append(f"unshare {' '.join(unshare)}: ip link set lo up: "
                              f"{up.stderr.strip()}")
                self.close()
            else:
                errors.append(f"unshare {' '.join(unshare)}: "
                              f"{self.holder.stderr.read().decode().strip()}")
                self.holder.stderr.close()
        raise NetnsError("cannot create a network namespace: " + "; ".join(errors))

    def command(self, args):
        """Return args prefixed to run inside the namespace."""
        return ["nsenter", "-t", str(self.holder.pid)] + self.enter + ["--"] + list(args)

    def run(self, args, timeout=30, **kwargs):
        """Run args in the namespace; return the CompletedProcess (text output)."""
        return subprocess.run(self.command(args), capture_output=True, text=True,
                              timeout=timeout, **kwargs)

    def popen(self, args, **kwargs):
        """Start args in the namespace. nsenter execs the command, so the
        Popen's pid is the command's own and may be signalled directly."""
        return subprocess.Popen(self.command(args), **kwargs)

    def close(self):
        if self.holder.poll() is None:
            self.holder.kill()
            self.holder.wait()
        if self.holder.stderr is not None and not self.holder.stderr.closed:
            self.holder.stderr.close()
