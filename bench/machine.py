"""The header's facts: when, on what machine, kernel and Python, which cni-sysctl and plugins."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import subprocess
import time

import cni_sysctl

from .spawn import check_output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .results import Background, CniSysctl, Kernel, Machine

PLUGINS_PACKAGE = "containernetworking-plugins"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _quiet(*argv: str) -> str:
    """stdout of a command that may fail (no git, no dpkg): "" then."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return proc.stdout.strip()


def machine() -> Machine:
    cpu, virtual = "?", False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "?":
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and "hypervisor" in line.split():
                    virtual = True
    except OSError:
        pass
    release: dict[str, str] = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep:
                    release[key] = value.strip('"')
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "virtual": virtual,
        "os": release.get("PRETTY_NAME", "?"),
        "os_id": release.get("ID", "?"),
        "os_version": release.get("VERSION_ID", "?"),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }


class CpuClock:
    """A reading of the machine's CPU time and of the benchmark's own, to tell afterwards how
    much other work shared a section."""

    __slots__ = ("busy", "ours", "steal", "wall")

    def __init__(self) -> None:
        self.wall = time.monotonic()
        self.busy, self.steal = _proc_stat()
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def since(self, start: CpuClock, section: str) -> Background:
        ours = self.ours - start.ours
        return {
            "section": section,
            "wall_s": round(self.wall - start.wall, 3),
            "other_cpu_s": round(max(0.0, self.busy - start.busy - ours), 3),
            "steal_s": round(self.steal - start.steal, 3),
        }


def _proc_stat() -> tuple[float, float]:
    """(busy, steal) seconds of all CPUs since boot: user+nice+system+irq+softirq (guest time is
    inside user), and steal."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    fields += [0] * (8 - len(fields))
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def kernel() -> Kernel:
    return {"system": platform.system(), "release": platform.release(), "version": platform.version()}


def python_version(interpreter: Sequence[str]) -> str:
    return check_output(*interpreter, "-c", "import sys; print(sys.version.split()[0])").strip()


def cni_sysctl_facts(repo: str) -> CniSysctl:
    pending = _quiet("git", "-C", repo, "status", "--porcelain", "--", "cni_sysctl").splitlines()
    return {
        "version": cni_sysctl.__version__,
        "repo": repo,
        "commit": _quiet("git", "-C", repo, "describe", "--always", "--dirty") or "?",
        "uncommitted": len(pending),
    }


def plugins_version() -> str:
    return _quiet("dpkg-query", "-W", "-f=${Version}", PLUGINS_PACKAGE) or "?"
