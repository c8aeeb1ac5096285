"""The header's facts: when, on what machine, kernel and Python, which cni-sysctl and plugins."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess

import cni_sysctl

from .spawn import check_output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .results import CniSysctl, Kernel, Machine

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
        "loadavg": loadavg(),
        "loadavg_end": [],
    }


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


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
