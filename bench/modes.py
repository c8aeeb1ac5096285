"""Install modes: how cni-sysctl sits in the CNI bin dir for the rows that name the mode.

Every cni-sysctl row of scenarios.py names its install mode. A mode is set up once, before the
warm-up, only if some row names it, and torn down at the end on every way out (Ctrl-C and
SIGTERM too, and after a setup that failed half-way). `setup` returns the bin dir that goes
first in those rows' CNI_PATH, holding an executable named `cni-sysctl`.

  launcher  `cni-sysctl install --bin-dir`: the direct Python launcher; every call starts
            `python -IS`.
  daemon    `cni-sysctl install --mode daemon --socket S` into its own bin dir (the static Go
            shim) and `cni-sysctl daemon --socket S` started through the world's spawner (so an
            interrupted run ends it by pid), waited for with `daemon --check`'s probe. The
            daemon and its workers are not descendants of the measured command, so their work
            is read from /proc around each measured call (`server_cpu`) and added to the
            command's own CPU; `memory()` is what the daemon section reports.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Protocol, TypedDict

from .errors import BenchError
from .spawn import check_output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .spawn import Job
    from .world import World


class Install(Protocol):
    """The two hooks of an install mode."""

    name: str

    def setup(self, world: World) -> str:
        """Put an executable `cni-sysctl` into a bin dir and make it ready to serve; return the dir."""

    def teardown(self, world: World) -> None:
        """Stop what setup started (by pid); safe after a partial or failed setup."""

    def server_cpu(self) -> float | None:
        """CPU seconds (user+sys) used so far by the mode's resident processes; None: it has none."""


class Launcher:
    """The direct Python launcher, `cni-sysctl install --bin-dir`, in the world's own bin dir
    (beside the no-op plugin), run by this virtualenv's interpreter."""

    name = "launcher"

    def setup(self, world: World) -> str:
        check_output(sys.executable, "-m", "cni_sysctl", "install", "--bin-dir", world.bin_dir)
        return world.bin_dir

    def teardown(self, world: World) -> None:
        """Nothing runs; the launcher goes with the world's temporary directory."""

    def server_cpu(self) -> float | None:
        return None


class Memory(TypedDict):
    """The daemon's processes at one moment (MiB)."""

    parent_rss_mb: float
    workers: int
    tree_rss_mb: float  # the parent's RSS plus every worker's (shared pages counted in each)
    tree_pss_mb: float  # the same, shared pages divided among their sharers: what they cost the machine


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _schedstat_ns(pid: int) -> int:
    """Time on CPU of every thread of `pid` (ns; /proc/PID/task/TID/schedstat, exact, where
    /proc/PID/stat counts clock ticks)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def _status_kb(pid: int, field: str, name: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _state(pid: int) -> str:
    """The scheduler state of `pid` (R running, S sleeping, ...); "" when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


class Daemon:
    """The shim in its own bin dir, and `cni-sysctl daemon` serving it on a socket of the world."""

    name = "daemon"

    def __init__(self) -> None:
        self.job: Job | None = None
        self.socket = ""
        self.seen: dict[int, int] = {}  # pid -> CPU ns at the last reading (workers come and go)
        self.cpu_ns = 0  # accumulated over every process ever seen

    def setup(self, world: World) -> str:
        bin_dir = world.path("bin-daemon")
        os.makedirs(world.path("daemon"), exist_ok=True)
        self.socket = world.path("daemon", "cni-sysctl.sock")
        check_output(sys.executable, "-m", "cni_sysctl", "install", "--bin-dir", bin_dir,
                     "--mode", "daemon", "--socket", self.socket)  # fmt: skip
        self.job = world.spawner.start(
            [sys.executable, "-m", "cni_sysctl", "daemon", "--socket", self.socket],
            {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
            tag="daemon",
        )
        from cni_sysctl.daemon import check

        deadline = time.monotonic() + 20
        while (why := check(self.socket, timeout=2.0)) is not None:
            if os.waitpid(self.job.pid, os.WNOHANG)[0]:
                world.spawner.live.discard(self.job.pid)
                with open(self.job.stderr_path, errors="replace") as f:
                    raise BenchError(f"cni-sysctl daemon exited at start: {f.read()[-2000:]}")
            if time.monotonic() > deadline:
                raise BenchError(f"cni-sysctl daemon not ready within 20 s: {why}")
            time.sleep(0.05)
        return bin_dir

    def teardown(self, world: World) -> None:
        if self.job is not None:
            world.spawner.stop(self.job)

    def pids(self) -> list[int]:
        return [] if self.job is None else [self.job.pid, *_children(self.job.pid)]

    def server_cpu(self) -> float | None:
        """The parent's and every worker's time on CPU, accumulated, once they are all idle (the
        work a call causes after its reply, such as the log line or a new idle worker, counts
        too): a worker that left since the last reading keeps what it had then."""
        self._settle()
        for pid in self.pids():
            now = _schedstat_ns(pid)
            self.cpu_ns += max(0, now - self.seen.get(pid, 0))
            self.seen[pid] = now
        return self.cpu_ns / 1e9

    def _settle(self, timeout: float = 1.0) -> None:
        """Wait until every process of the daemon sleeps, twice in a row (1 ms apart)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 2 and time.monotonic() < deadline:
            quiet = quiet + 1 if all(_state(pid) in ("S", "") for pid in self.pids()) else 0
            time.sleep(0.001)

    def memory(self) -> Memory:
        """The daemon's memory, once it is idle."""
        self._settle()
        pids = self.pids()
        if not pids:
            raise BenchError("the daemon is not running")
        rss = [_status_kb(pid, "VmRSS") for pid in pids]
        pss = [_status_kb(pid, "Pss", "smaps_rollup") for pid in pids]
        return {
            "parent_rss_mb": round(rss[0] / 1024, 2),
            "workers": len(pids) - 1,
            "tree_rss_mb": round(sum(rss) / 1024, 2),
            "tree_pss_mb": round(sum(pss) / 1024, 2),
        }


INSTALLS: dict[str, Callable[[], Install]] = {
    "launcher": Launcher,
    "daemon": Daemon,
}
