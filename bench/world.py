"""The throwaway world a run measures in, and the one place that removes it.

A temporary directory (bin dirs, conflists, host-local's dataDir, libcni's cache, the stdin
files, the children's output), network namespaces all named `csb<random>-*` (a "host" one
holding every bridge and gateway address, and container ones), and the children started through
its spawner. Nothing of the machine's own network is touched. `cleanup()` ends the children
still running by pid, deletes the namespaces and the directory; the CLI calls it on every way
out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile

from cni_sysctl.errors import CniError
from cni_sysctl.netns import NetnsEntered

from .errors import BenchError
from .spawn import Spawner, check_output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

NETNS_DIR = "/var/run/netns"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class World:
    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="cni-sysctl-bench.")
        self.prefix = "csb" + os.urandom(3).hex()
        self.made: list[str] = []  # namespaces, in the order made
        self.spawner = Spawner(self.path("io"))
        self.bin_dir = self.path("bin")  # the no-op plugin, and the launcher install's cni-sysctl
        self.net_dir = self.path("net.d")
        self.ip = shutil.which("ip", path=SYSTEM_PATH) or "/usr/sbin/ip"
        self.true = shutil.which("true", path=SYSTEM_PATH) or "/bin/true"
        self.host = ""

    def path(self, *parts: str) -> str:
        return os.path.join(self.tmp, *parts)

    def setup(self) -> None:
        os.makedirs(self.spawner.io_dir)
        os.makedirs(self.net_dir)
        os.makedirs(self.bin_dir)

    def make_host(self) -> None:
        """The "host" netns: cnitool runs there, so bridges and gateway addresses live there."""
        self.host = self.add_netns("host")
        check_output(self.ip, "-n", self.host, "link", "set", "lo", "up")

    def add_netns(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        check_output("ip", "netns", "add", name)
        self.made.append(name)
        return name

    def remove_netns(self, name: str) -> None:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        if name in self.made:
            self.made.remove(name)

    @staticmethod
    def netns_path(name: str) -> str:
        return os.path.join(NETNS_DIR, name)

    @contextlib.contextmanager
    def inside(self, name: str) -> Iterator[None]:
        """This (single-threaded) process, and the children it spawns meanwhile, run in the named
        netns; the original one is restored on the way out. cni_sysctl's own NetnsEntered does
        it: opened read-only, never created; a failed return raises FatalNetnsError, which
        nothing here catches (the CLI stops the run on it)."""
        netns = NetnsEntered(self.netns_path(name))
        try:
            netns.__enter__()
        except CniError as err:
            raise BenchError(
                f"cannot enter netns {name}: {err.msg}" + (f" ({err.details})" if err.details else "")
            ) from None
        try:
            yield
        finally:
            netns.__exit__(None, None, None)

    def cleanup(self) -> None:
        self.spawner.kill_all()
        for name in reversed(list(self.made)):
            self.remove_netns(name)
        shutil.rmtree(self.tmp, ignore_errors=True)
