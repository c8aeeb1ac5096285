#!/usr/bin/env python3
"""What cni-sysctl costs a container start, measured through the real libcni (issue 4).

    sudo .venv/bin/python bench/bench.py [--cycles 30] [--quick]

Standard library only. One run, the configurations interleaved round-robin in every cycle (the
starting configuration rotates), so drift of the machine hits all of them equally:

  (a) bridge + host-local                      the chain every other one extends
  (b) (a) + tuning, three sysctls in IFNAME form
  (c) (a) + cni-sysctl, the same three keys in short form, linkBounce never
  (d) (a) + cni-sysctl, the same three keys + ipv6.conf.addr_gen_mode=1, linkBounce auto (bounce)
  (e) (a) + a no-op Python plugin run like cni-sysctl (same interpreter, -IS)
  (f) a bare `python -I -c pass` spawn (no cnitool)

Each ADD and DEL is `ip netns exec HOST cnitool add|del NET /var/run/netns/CONT` into a fresh
container netns; the constant cost of `ip netns exec HOST true` is measured alongside. Then the
plugin process alone (direct invocation with wait4 rusage), a burst of concurrent ADDs, the cost
of one more key, and `python -X importtime`. bench/README.md explains every line printed.

Nothing touches the machine's own network: every bridge, gateway address and veth lives in
throwaway namespaces named csb<random>-*, host-local's dataDir and libcni's cache live in a
temporary directory, and all of it is removed on exit, Ctrl-C or SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CNITOOL = os.path.join(REPO, ".build", "cnitool")
DEBIAN_PLUGINS = "/usr/lib/cni"
NETNS_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
NOOP = "cni-bench-noop"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CNI_VERSION = "1.0.0"

# The three sysctls of (b), (c) and (d), as tuning and as cni-sysctl spell them.
TUNING_SYSCTLS = {
    "net.ipv6.conf.IFNAME.accept_ra": "2",
    "net.ipv4.conf.IFNAME.rp_filter": "2",
    "net.ipv4.tcp_keepalive_time": "600",
}
SHORT_SYSCTLS = ["ipv6.conf.accept_ra=2", "ipv4.conf.rp_filter=2", "net.ipv4.tcp_keepalive_time=600"]
BOUNCE_SYSCTLS = [*SHORT_SYSCTLS, "ipv6.conf.addr_gen_mode=1"]

# Per-interface sysctls the per-key measurement never picks: writing them, even with the value
# already there, does more than store a number (or they cannot be read back).
KEY_COST_SKIP = frozenset(("disable_ipv6", "forwarding", "mtu", "stable_secret", "addr_gen_mode"))

NOOP_PLUGIN = """\
#!{interpreter}
# A no-op CNI plugin written by cni-sysctl's bench/bench.py: decode the config, answer ADD with
# prevResult in the config's cniVersion. The floor of any chained Python plugin.
import json, os, sys
conf = json.loads(sys.stdin.buffer.read() or b"{{}}")
command = os.environ.get("CNI_COMMAND")
if command == "ADD":
    result = conf.get("prevResult") or {{}}
    result["cniVersion"] = conf.get("cniVersion")
    sys.stdout.write(json.dumps(result))
elif command == "VERSION":
    sys.stdout.write(json.dumps({{"cniVersion": conf.get("cniVersion", "1.0.0"),
                                 "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}}))
"""

# The measuring probe. A child's ru_maxrss is never below the RSS of the process it was spawned
# from: exec records the peak of the address space it replaces (with posix_spawn's vfork, this
# benchmark's ~16 MB). So every figure with an RSS comes from a small interpreter that spawns the
# command, times it (wall: spawn .. wait4) and reports the command's own wait4 rusage. Its own
# peak (printed as the RSS floor) is that of a bare `python -IS`, below any Python plugin's.
PROBE = """\
import os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(report, "w") as f:
    f.write(f"{wall} {os.waitstatus_to_exitcode(status)} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
"""

CHAINS = {
    "a": "bridge + host-local",
    "b": "(a) + tuning, 3 sysctls (IFNAME form)",
    "c": "(a) + cni-sysctl, 3 keys, linkBounce never",
    "d": "(a) + cni-sysctl, 3 keys + addr_gen_mode=1, auto (bounce)",
    "e": "(a) + no-op Python plugin (-IS)",
}
SPAWNS = {
    "f": "python -I -c pass (no cnitool)",
    "fS": "python -IS -c pass (the launchers' flags)",
    "x": "ip netns exec HOST true (in every ADD/DEL above)",
}


class BenchError(Exception):
    """Something the benchmark cannot go on without."""


# ---------------------------------------------------------------- statistics and formatting


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of the values <= it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float, width: int = 8, digits: int = 1) -> str:
    if math.isnan(seconds):
        return "n/a".rjust(width)
    return f"{seconds * 1000:{width}.{digits}f}"


def ratio(num: float, den: float) -> float:
    if math.isnan(num) or math.isnan(den) or den <= 0:
        return math.nan
    return num / den


def fmt_ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def out(line: str = "") -> None:
    print(line, flush=True)


def progress(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


class Sample:
    """One finished child: wall time, exit code and its wait4 rusage (the child and every
    descendant it waited for: for cnitool, the whole chain of plugins)."""

    __slots__ = ("wall", "rc", "maxrss_kb", "cpu", "stdout", "stderr")

    def __init__(self, wall: float, rc: int, maxrss_kb: int, cpu: float, stdout: bytes, stderr: bytes) -> None:
        self.wall = wall
        self.rc = rc
        self.maxrss_kb = maxrss_kb
        self.cpu = cpu
        self.stdout = stdout
        self.stderr = stderr

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def why(self) -> str:
        text = (self.stderr or self.stdout).decode(errors="replace").strip()
        return f"exit {self.rc}: " + (" | ".join(text.splitlines()[-3:]) or "no output")


class Job:
    __slots__ = ("pid", "started", "stdout_path", "stderr_path")

    def __init__(self, pid: int, started: float, stdout_path: str, stderr_path: str) -> None:
        self.pid = pid
        self.started = started
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path


class Spawner:
    """posix_spawn + wait4: no Python fork in the measured path, and rusage per child."""

    def __init__(self, io_dir: str) -> None:
        self.io_dir = io_dir
        self.live: set[int] = set()
        self.probe_python: list[str] = [sys.executable, "-I", "-S"]

    def start(self, argv: list[str], env: dict[str, str], stdin_path: str = os.devnull, tag: str = "run") -> Job:
        stdout_path = os.path.join(self.io_dir, f"{tag}.out")
        stderr_path = os.path.join(self.io_dir, f"{tag}.err")
        created = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, stdin_path, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, stdout_path, created, 0o600),
            (os.POSIX_SPAWN_OPEN, 2, stderr_path, created, 0o600),
        ]
        started = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        self.live.add(pid)
        return Job(pid, started, stdout_path, stderr_path)

    def wait(self, job: Job) -> Sample:
        _, status, usage = os.wait4(job.pid, 0)
        return self._finish(job, status, usage, time.perf_counter())

    def wait_all(self, jobs: list[Job]) -> list[Sample]:
        """Reap in order of completion, each with its own end time."""
        pending = {job.pid: job for job in jobs}
        done: dict[int, Sample] = {}
        while pending:
            pid, status, usage = os.wait4(-1, 0)
            ended = time.perf_counter()
            job = pending.pop(pid, None)
            if job is None:
                self.live.discard(pid)
                continue
            done[pid] = self._finish(job, status, usage, ended)
        return [done[job.pid] for job in jobs]

    def _finish(self, job: Job, status: int, usage: resource.struct_rusage, ended: float) -> Sample:
        self.live.discard(job.pid)
        with open(job.stdout_path, "rb") as f:
            stdout = f.read()
        with open(job.stderr_path, "rb") as f:
            stderr = f.read()
        return Sample(
            ended - job.started,
            os.waitstatus_to_exitcode(status),
            usage.ru_maxrss,
            usage.ru_utime + usage.ru_stime,
            stdout,
            stderr,
        )

    def run(self, argv: list[str], env: dict[str, str], stdin_path: str = os.devnull) -> Sample:
        return self.wait(self.start(argv, env, stdin_path))

    def measure(self, argv: list[str], env: dict[str, str], stdin_path: str = os.devnull) -> Sample:
        """Run argv under the probe: wall time, exit code, CPU and peak RSS of argv itself and its
        descendants, free of this process's own RSS (see PROBE)."""
        report = os.path.join(self.io_dir, "probe.report")
        probe = self.run([*self.probe_python, "-c", PROBE, report, *argv], env, stdin_path)
        try:
            with open(report) as f:
                wall, rc, maxrss_kb, cpu = f.read().split()
            os.unlink(report)
        except (OSError, ValueError):
            return probe  # the probe itself failed: its exit code and stderr say why
        return Sample(float(wall), int(rc), int(maxrss_kb), float(cpu), probe.stdout, probe.stderr)

    def kill_all(self) -> None:
        """End the children still running (ours, by pid) and reap them."""
        for pid in list(self.live):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in list(self.live):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.live.discard(pid)


def check_call(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


# ---------------------------------------------------------------- network namespaces


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class InNetns:
    """`with InNetns(name):` this (single-threaded) process and the children it spawns run in
    the named netns; the original one is restored on the way out."""

    def __init__(self, name: str) -> None:
        self.path = os.path.join(NETNS_DIR, name)
        self.origin = -1

    def __enter__(self) -> InNetns:
        self.origin = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        except BaseException:
            os.close(self.origin)
            raise
        finally:
            os.close(target)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            _setns(self.origin)
        except OSError as err:
            # Going on in a foreign netns could touch what must not be touched.
            print(f"bench: FATAL: cannot return to the original netns: {err}", file=sys.stderr)
            os._exit(70)
        finally:
            os.close(self.origin)


class Namespaces:
    """Network namespaces made by this run, all named <prefix>-*; remove() and cleanup()."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.made: list[str] = []

    def add(self, suffix: str) -> str:
        name = f"{self.prefix}-{suffix}"
        check_call("ip", "netns", "add", name)
        self.made.append(name)
        return name

    def remove(self, name: str) -> None:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        if name in self.made:
            self.made.remove(name)

    def cleanup(self) -> None:
        for name in reversed(list(self.made)):
            self.remove(name)


# ---------------------------------------------------------------- python -X importtime


def parse_importtime(text: str) -> list[tuple[str, int, int]]:
    """(module, nesting level, cumulative us) for every line of -X importtime's stderr."""
    entries = []
    for line in text.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:") :].split("|")
        if len(fields) != 3:
            continue
        try:
            cumulative = int(fields[1])
        except ValueError:
            continue  # the header line
        name = fields[2][1:]
        bare = name.lstrip(" ")
        entries.append((bare.strip(), (len(name) - len(bare)) // 2, cumulative))
    return entries


def with_parents(entries: list[tuple[str, int, int]]) -> list[tuple[str, str | None, int]]:
    """(module, the module that imported it or None at top level, cumulative us). importtime
    prints a module after everything it imported, one level deeper: reading backwards, the
    parent of a line is the last line seen one level up."""
    result = []
    last_at: dict[int, str] = {}
    for module, level, cumulative in reversed(entries):
        last_at[level] = module
        result.append((module, last_at.get(level - 1) if level else None, cumulative))
    result.reverse()
    return result


# ---------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.cycles: int = args.cycles
        self.burst_size: int = args.burst
        self.import_runs: int = args.import_runs
        self.tmp = tempfile.mkdtemp(prefix="cni-sysctl-bench.")
        self.ns = Namespaces("csb" + os.urandom(3).hex())
        self.spawner = Spawner(os.path.join(self.tmp, "io"))
        self.bin_dir = os.path.join(self.tmp, "bin")
        self.net_dir = os.path.join(self.tmp, "net.d")
        self.ip = shutil.which("ip", path=SYSTEM_PATH) or "/usr/sbin/ip"
        self.true = shutil.which("true", path=SYSTEM_PATH) or "/bin/true"
        self.host = ""
        self.interpreter: list[str] = []
        self.launcher = os.path.join(self.bin_dir, "cni-sysctl")
        self.noop = os.path.join(self.bin_dir, NOOP)
        self.broken: dict[str, str] = {}  # chain or direct variant -> why it cannot be measured
        self.figures: dict[str, float] = {}  # for the targets at the end
        self.notes: list[str] = []
        self.direct_container = ""
        self.rss_floor_kb = 0
        self.direct_envs: dict[str, dict[str, str]] = {}

    # ---- setup

    def setup(self) -> None:
        os.makedirs(self.spawner.io_dir)
        os.makedirs(self.net_dir)
        check_call(sys.executable, "-m", "cni_sysctl", "install", "--bin-dir", self.bin_dir)
        with open(self.launcher) as f:
            shebang = f.readline()
        if not shebang.startswith("#!"):
            raise BenchError(f"{self.launcher} has no #! line")
        self.interpreter = shebang[2:].split()
        with open(self.noop, "w") as f:
            f.write(NOOP_PLUGIN.format(interpreter=" ".join(self.interpreter)))
        os.chmod(self.noop, 0o755)  # noqa: S103 - a plugin executable, like the others in the bin dir
        self.spawner.probe_python = [self.interpreter[0], "-I", "-S"]
        self.rss_floor_kb = int(median([self.spawner.measure([self.true], {}).maxrss_kb for _ in range(5)]))
        self.host = self.ns.add("host")
        check_call(self.ip, "-n", self.host, "link", "set", "lo", "up")
        for index, chain in enumerate(CHAINS):
            self.write_conflist(chain, index + 1)

    def write_conflist(self, chain: str, index: int) -> None:
        plugins: list[dict[str, object]] = [
            {
                "type": "bridge",
                "bridge": f"bench-{chain}",
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": os.path.join(self.tmp, "ipam"),
                    "ranges": [[{"subnet": f"10.209.{index}.0/24"}], [{"subnet": f"fd00:209:{index}::/64"}]],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                },
            }
        ]
        if chain == "b":
            plugins.append({"type": "tuning", "sysctl": TUNING_SYSCTLS})
        elif chain == "c":
            plugins.append({"type": "cni-sysctl", "sysctl": SHORT_SYSCTLS, "linkBounce": "never"})
        elif chain == "d":
            plugins.append({"type": "cni-sysctl", "sysctl": BOUNCE_SYSCTLS, "linkBounce": "auto"})
        elif chain == "e":
            plugins.append({"type": NOOP})
        conflist = {"cniVersion": CNI_VERSION, "name": f"bench-{chain}", "plugins": plugins}
        with open(os.path.join(self.net_dir, f"bench-{chain}.conflist"), "w") as f:
            json.dump(conflist, f, indent=2)

    def cnitool_env(self) -> dict[str, str]:
        return {
            "PATH": SYSTEM_PATH,
            "NETCONFPATH": self.net_dir,
            "CNI_PATH": f"{self.bin_dir}:{DEBIAN_PLUGINS}",
            "CNI_CACHE_DIR": os.path.join(self.tmp, "cache"),
            "CNI_IFNAME": "eth0",
        }

    def cnitool_argv(self, command: str, chain: str, container: str) -> list[str]:
        return [self.ip, "netns", "exec", self.host, CNITOOL, command, f"bench-{chain}", f"{NETNS_DIR}/{container}"]

    def cnitool(self, command: str, chain: str, container: str) -> Sample:
        return self.spawner.measure(self.cnitool_argv(command, chain, container), self.cnitool_env())

    def read_sysctl(self, container: str, key: str) -> str:
        with InNetns(container), open("/proc/sys/" + key.replace(".", "/")) as f:
            return f.read().strip()

    # ---- header

    def header(self) -> None:
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
        except OSError:
            pass
        version = check_call(*self.interpreter, "-c", "import sys; print(sys.version.split()[0])").strip()
        plugins = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        head = subprocess.run(
            ["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
        ).stdout.strip()
        out("cni-sysctl benchmark (bench/bench.py, issue 4)")
        out(f"date        {now}")
        out(f"machine     nproc {os.cpu_count()}, {cpu}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        out(f"kernel      {platform.system()} {platform.release()} {platform.version()}")
        out(f"python      {version} ({' '.join(self.interpreter)}; the plugin's and the no-op's interpreter)")
        pending = subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "--", "cni_sysctl"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines()
        extra = f" + {len(pending)} uncommitted file(s) in cni_sysctl/" if pending else ""
        out(f"cni-sysctl  {REPO} at {head or '?'}{extra}")
        out(f"libcni      {CNITOOL}; Debian containernetworking-plugins {plugins or '?'} in {DEBIAN_PLUGINS}")
        out(f"method      {self.cycles} cycles, configurations interleaved round-robin, start rotated each cycle;")
        out("            each run under a small probe process: wall = posix_spawn .. wait4 (perf_counter), CPU")
        out("            (user+sys) and peak RSS from the command's wait4 rusage (itself and every descendant it")
        floor = f"{self.rss_floor_kb / 1024:.1f} MB"
        out(f"            waited for); an RSS at the probe's floor ({floor}) is the probe's, the command's is lower")
        out()

    # ---- (a)..(f) through cnitool

    def warm_up(self) -> None:
        """One ADD+DEL per chain: creates each bridge and its gateway addresses, fills the page
        cache and __pycache__, and checks each chain does what it says."""
        for chain in CHAINS:
            container = self.ns.add(f"w{chain}")
            try:
                add = self.cnitool("add", chain, container)
                if not add.ok:
                    self.broken[chain] = "ADD failed: " + add.why()
                    continue
                problem = self.verify(chain, container)
                if problem:
                    self.broken[chain] = problem
                delete = self.cnitool("del", chain, container)
                if not delete.ok:
                    self.broken[chain] = "DEL failed: " + delete.why()
            finally:
                self.ns.remove(container)

    def verify(self, chain: str, container: str) -> str | None:
        want: dict[str, str] = {}
        if chain in "bcd":
            want = {
                "net.ipv6.conf.eth0.accept_ra": "2",
                "net.ipv4.conf.eth0.rp_filter": "2",
                "net.ipv4.tcp_keepalive_time": "600",
            }
        if chain == "d":
            want["net.ipv6.conf.eth0.addr_gen_mode"] = "1"
        for key, value in want.items():
            got = self.read_sysctl(container, key)
            if got != value:
                return f"after ADD {key} is {got!r}, not {value!r}"
        if chain == "d":
            addrs = check_call(self.ip, "-n", container, "-o", "addr", "show", "dev", "eth0")
            if "fe80::" in addrs:
                return "after the bounce eth0 still has an fe80:: address"
            if f"fd00:209:{list(CHAINS).index('d') + 1}::" not in addrs or "10.209." not in addrs:
                return "after the bounce eth0 lost its IPAM addresses"
            routes = check_call(self.ip, "-n", container, "-6", "route", "show", "default")
            if "default" not in routes:
                return "after the bounce the IPv6 default route is gone"
        return None

    def run_cycles(self) -> dict[str, dict[str, list[Sample | None]]]:
        items = list(CHAINS) + list(SPAWNS)
        samples: dict[str, dict[str, list[Sample | None]]] = {item: {"add": [], "del": []} for item in items}
        spawn_argv = {
            "f": [*self.interpreter[:1], "-I", "-c", "pass"],
            "fS": [*self.interpreter[:1], "-IS", "-c", "pass"],
            "x": [self.ip, "netns", "exec", self.host, self.true],
        }
        for cycle in range(self.cycles):
            shift = cycle % len(items)
            for item in items[shift:] + items[:shift]:
                if item in SPAWNS:
                    sample = self.spawner.measure(spawn_argv[item], {"PATH": SYSTEM_PATH})
                    samples[item]["add"].append(sample if sample.ok else None)
                    continue
                if item in self.broken:
                    continue
                container = self.ns.add(f"{cycle}{item}")
                try:
                    add = self.cnitool("add", item, container)
                    delete = self.cnitool("del", item, container)
                finally:
                    self.ns.remove(container)
                samples[item]["add"].append(add if add.ok else None)
                samples[item]["del"].append(delete if delete.ok else None)
                if not add.ok:
                    self.notes.append(f"cycle {cycle} ({item}) ADD {add.why()}")
                if not delete.ok:
                    self.notes.append(f"cycle {cycle} ({item}) DEL {delete.why()}")
            progress(f"cycle {cycle + 1}/{self.cycles}")
        return samples

    def report_cycles(self, samples: dict[str, dict[str, list[Sample | None]]]) -> None:
        def walls(item: str, op: str) -> list[float]:
            return [s.wall for s in samples[item][op] if s is not None]

        out(
            f"1. Chains through cnitool, {self.cycles} cycles (ms; RSS = peak of the whole chain, CPU = user+sys"
            " of the chain)"
        )
        out("   slow = ADDs more than 40 ms above the row's p50: with IPv6 ranges the Go plugins now and then")
        out("   wait one more 50 ms poll (in (a) alone too; never with IPv4-only ranges); p50 and the")
        out("   paired medians below absorb it, p90 does not")
        out(
            f"   {'configuration':<58}{'ADD p50':>8}{'ADD p90':>8}{'DEL p50':>8}{'DEL p90':>8}"
            f"{'RSS MB':>8}{'CPU ms':>8}  ok    slow"
        )
        for item, label in {**CHAINS, **SPAWNS}.items():
            tag = f"({item})" if item in CHAINS or item == "f" else "   "
            name = f"{tag} {label}"
            if item in self.broken:
                out(f"   {name:<58} NOT MEASURED: {self.broken[item]}")
                continue
            adds = [s for s in samples[item]["add"] if s is not None]
            total = len(samples[item]["add"])
            rss = f"{median([s.maxrss_kb / 1024 for s in adds]):8.1f}"
            cpu = median([s.cpu for s in adds])
            if item in SPAWNS:
                out(
                    f"   {name:<58}{ms(median(walls(item, 'add')))}{ms(percentile(walls(item, 'add'), 90))}"
                    f"{'':>16}{rss}{ms(cpu)}  {len(adds)}/{total}"
                )
                continue
            dels = walls(item, "del")
            p50 = median(walls(item, "add"))
            slow = sum(1 for w in walls(item, "add") if w > p50 + 0.040)
            out(
                f"   {name:<58}{ms(p50)}{ms(percentile(walls(item, 'add'), 90))}"
                f"{ms(median(dels))}{ms(percentile(dels, 90))}{rss}{ms(cpu)}"
                f"  {len(adds)}/{total:<4}{slow:>3}"
            )
        self.figures["netns_exec"] = median(walls("x", "add"))
        self.figures["python_spawn"] = median(walls("f", "add"))
        out()

        out("2. Added latency over (a), ms: median of the per-cycle differences X_i - a_i (paired: same cycle);")
        out("   in brackets the difference of the medians")
        out(f"   {'configuration':<58}{'ADD':>8}{'':>10}{'DEL':>8}")
        for item in "bcde":
            if item in self.broken or "a" in self.broken:
                out(f"   ({item}) {CHAINS[item]:<54} n/a")
                continue
            line = f"   ({item}) {CHAINS[item]:<54}"
            for op in ("add", "del"):
                diffs = [
                    x.wall - a.wall
                    for x, a in zip(samples[item][op], samples["a"][op])
                    if x is not None and a is not None
                ]
                added = median(diffs)
                of_medians = median(walls(item, op)) - median(walls("a", op))
                self.figures[f"added_{op}_{item}"] = added
                line += f"{ms(added)} [{ms(of_medians, 6)}]"
            out(line)
        out()
        out("   ratios of added ADD latency (the paired medians above):")
        f = self.figures
        for num, den, what in (
            ("c", "b", "cni-sysctl without bounce vs tuning"),
            ("c", "e", "cni-sysctl without bounce vs the no-op Python plugin"),
            ("d", "e", "cni-sysctl with bounce vs the no-op Python plugin"),
            ("d", "c", "the bounce: with vs without"),
        ):
            value = ratio(f.get(f"added_add_{num}", math.nan), f.get(f"added_add_{den}", math.nan))
            out(f"   ({num})/({den}) = {fmt_ratio(value):>6}   {what}")
        out()

    # ---- the plugin process alone

    def direct_setup(self) -> dict[str, tuple[str, str, str]]:
        """A container netns attached by chain (a), kept for all direct runs, and the stdin configs
        libcni would give a chained plugin there. -> variant: (executable, command, stdin file)."""
        container = self.ns.add("direct")
        add = self.cnitool("add", "a", container)
        if not add.ok:
            raise BenchError(f"direct setup: cnitool add (a) failed: {add.why()}")
        self.direct_container = container
        prev_result = json.loads(add.stdout)
        keys = self.key_cost_keys(container)
        written: list[str] = []

        def conf(plugin_type: str, **fields: object) -> str:
            body = {
                "cniVersion": CNI_VERSION,
                "name": "bench-direct",
                "type": plugin_type,
                **fields,
                "prevResult": prev_result,
            }
            path = os.path.join(self.tmp, f"stdin-{len(written)}-{plugin_type}.json")
            written.append(path)
            with open(path, "w") as f:
                json.dump(body, f)
            return path

        version = os.path.join(self.tmp, "stdin-version.json")
        with open(version, "w") as f:
            json.dump({"cniVersion": CNI_VERSION}, f)
        no_bounce = conf("cni-sysctl", sysctl=SHORT_SYSCTLS, linkBounce="never")
        noop = conf(NOOP)
        return {
            "sysctl ADD, 3 keys, no bounce": (self.launcher, "ADD", no_bounce),
            "sysctl ADD, 4 keys, bounce": (self.launcher, "ADD", conf("cni-sysctl", sysctl=BOUNCE_SYSCTLS)),
            "no-op ADD": (self.noop, "ADD", noop),
            "sysctl DEL": (self.launcher, "DEL", no_bounce),
            "no-op DEL": (self.noop, "DEL", noop),
            "sysctl VERSION": (self.launcher, "VERSION", version),
            "no-op VERSION": (self.noop, "VERSION", version),
            "sysctl ADD, 1 key, never": (self.launcher, "ADD", conf("cni-sysctl", sysctl=keys[:1], linkBounce="never")),
            "sysctl ADD, 100 keys, never": (self.launcher, "ADD", conf("cni-sysctl", sysctl=keys, linkBounce="never")),
        }

    def key_cost_keys(self, container: str) -> list[str]:
        """100 distinct per-interface sysctls of eth0 in short form, each set to the value it has."""
        keys = []
        with InNetns(container):
            for family, table in (("ipv4", "conf"), ("ipv4", "neigh"), ("ipv6", "neigh"), ("ipv6", "conf")):
                directory = f"/proc/sys/net/{family}/{table}/eth0"
                for param in sorted(os.listdir(directory)):
                    path = f"{directory}/{param}"
                    if param in KEY_COST_SKIP or os.stat(path).st_mode & 0o600 != 0o600:
                        continue
                    try:
                        with open(path) as f:
                            value = f.read().strip()
                    except OSError:
                        continue
                    if value and not any(c.isspace() for c in value):
                        keys.append(f"{family}.{table}.{param}={value}")
        if len(keys) < 100:
            raise BenchError(f"only {len(keys)} usable per-interface sysctls on eth0, the key cost needs 100")
        return keys[:100]

    def direct_env(self, command: str, libcni_version_env: bool = True) -> dict[str, str]:
        if command == "VERSION":
            # What libcni's GetVersionInfo sets (pkg/invoke/exec.go): dummies, no container id.
            if libcni_version_env:
                return {
                    "PATH": SYSTEM_PATH,
                    "CNI_COMMAND": "VERSION",
                    "CNI_CONTAINERID": "",
                    "CNI_NETNS": "dummy",
                    "CNI_IFNAME": "dummy",
                    "CNI_ARGS": "",
                    "CNI_PATH": "dummy",
                }
            return {"PATH": SYSTEM_PATH, "CNI_COMMAND": "VERSION"}
        return {
            "PATH": SYSTEM_PATH,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": "bench-direct",
            "CNI_NETNS": f"{NETNS_DIR}/{self.direct_container}",
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": "",
            "CNI_PATH": f"{self.bin_dir}:{DEBIAN_PLUGINS}",
        }

    def run_direct(self, variants: dict[str, tuple[str, str, str]]) -> dict[str, list[Sample | None]]:
        envs: dict[str, dict[str, str]] = {}
        with InNetns(self.host):
            for name, (exe, command, stdin) in variants.items():  # warm up, and check each works
                env = self.direct_env(command)
                sample = self.spawner.measure([exe], env, stdin)
                if not sample.ok and command == "VERSION":
                    self.notes.append(
                        f"{name} FAILS with the environment libcni's GetVersionInfo gives a plugin "
                        f"(CNI_NETNS=dummy CNI_IFNAME=dummy CNI_PATH=dummy): {sample.why()}; "
                        "measured with CNI_COMMAND=VERSION alone instead"
                    )
                    env = self.direct_env(command, libcni_version_env=False)
                    sample = self.spawner.measure([exe], env, stdin)
                if not sample.ok:
                    self.broken[name] = sample.why()
                envs[name] = env
            names = [n for n in variants if n not in self.broken]
            samples: dict[str, list[Sample | None]] = {name: [] for name in variants}
            for rep in range(self.cycles):
                shift = rep % max(1, len(names))
                for name in names[shift:] + names[:shift]:
                    exe, _, stdin = variants[name]
                    sample = self.spawner.measure([exe], envs[name], stdin)
                    samples[name].append(sample if sample.ok else None)
                    if not sample.ok:
                        self.notes.append(f"direct {name} rep {rep}: {sample.why()}")
        self.direct_envs = envs
        return samples

    def report_direct(self, variants: dict[str, tuple[str, str, str]], samples: dict[str, list[Sample | None]]) -> None:
        out("3. The plugin process alone: the launcher run directly (posix_spawn, wait4) from the host netns")
        out(
            f"   with the CNI environment and the stdin config libcni would give it, {self.cycles} reps"
            " interleaved (ms)"
        )
        out(f"   {'invocation':<34}{'wall p50':>9}{'wall p90':>9}{'CPU p50':>9}{'RSS MB':>8}  ok")
        for name in variants:
            if name in self.broken:
                out(f"   {name:<34} NOT MEASURED: {self.broken[name]}")
                continue
            runs = [s for s in samples[name] if s is not None]
            walls = [s.wall for s in runs]
            self.figures[f"direct {name}"] = median(walls)
            self.figures[f"direct cpu {name}"] = median([s.cpu for s in runs])
            out(
                f"   {name:<34}{ms(median(walls), 9, 2)}{ms(percentile(walls, 90), 9, 2)}"
                f"{ms(median([s.cpu for s in runs]), 9, 2)}{median([s.maxrss_kb / 1024 for s in runs]):8.1f}"
                f"  {len(runs)}/{self.cycles}"
            )

        def paired(a: str, b: str, field: str, combine: Callable[[float, float], float]) -> float:
            values = [
                combine(getattr(x, field), getattr(y, field))
                for x, y in zip(samples.get(a, []), samples.get(b, []))
                if x is not None and y is not None
            ]
            return median(values)

        def quotient(x: float, y: float) -> float:
            return x / y

        out("   ratios: of the medians above; in brackets the median of the per-rep ratios (paired)")
        f = self.figures
        for a, b in (
            ("sysctl DEL", "no-op DEL"),
            ("sysctl VERSION", "no-op VERSION"),
            ("sysctl ADD, 3 keys, no bounce", "no-op ADD"),
            ("sysctl ADD, 4 keys, bounce", "no-op ADD"),
        ):
            wall = ratio(f.get("direct " + a, math.nan), f.get("direct " + b, math.nan))
            cpu = ratio(f.get("direct cpu " + a, math.nan), f.get("direct cpu " + b, math.nan))
            out(
                f"   {a + ' / ' + b:<48} wall {fmt_ratio(wall):>6} [{fmt_ratio(paired(a, b, 'wall', quotient))}]"
                f", CPU {fmt_ratio(cpu):>6} [{fmt_ratio(paired(a, b, 'cpu', quotient))}]"
            )

        def per_key(x: float, y: float) -> float:
            return (x - y) / 99

        one, hundred = "sysctl ADD, 1 key, never", "sysctl ADD, 100 keys, never"
        wall_key = paired(hundred, one, "wall", per_key)
        cpu_key = paired(hundred, one, "cpu", per_key)
        self.figures["per_key"] = wall_key
        out(
            f"   cost per key: (t100 - t1) / 99 = {ms(wall_key, 0, 4).strip()} ms wall,"
            f" {ms(cpu_key, 0, 4).strip()} ms CPU (median of per-rep differences;"
        )
        out("   100 per-interface sysctls of eth0 in short form, each set to the value it has, linkBounce never)")
        out()

    # ---- concurrent ADDs

    def burst(self, chain: str) -> tuple[list[Sample], list[Sample]]:
        containers = [self.ns.add(f"b{chain}{j}") for j in range(self.burst_size)]
        try:
            env = self.cnitool_env()
            jobs = [
                self.spawner.start(self.cnitool_argv("add", chain, c), env, tag=f"burst-add-{j}")
                for j, c in enumerate(containers)
            ]
            adds = self.spawner.wait_all(jobs)
            jobs = [
                self.spawner.start(self.cnitool_argv("del", chain, c), env, tag=f"burst-del-{j}")
                for j, c in enumerate(containers)
            ]
            dels = self.spawner.wait_all(jobs)
        finally:
            for c in containers:
                self.ns.remove(c)
        return adds, dels

    def run_bursts(self) -> None:
        out(
            f"4. Burst: {self.burst_size} concurrent `cnitool add` into {self.burst_size} fresh netns, started"
            f" together, then {self.burst_size} concurrent DELs"
        )
        out(f"   {'configuration':<58}{'ok':>6}{'p50':>8}{'p99':>8}{'max':>8}{'p99/p50':>9}   DEL ok p50 p99")
        for chain in "acd":
            if chain in self.broken:
                out(f"   ({chain}) {CHAINS[chain]:<54} NOT MEASURED: {self.broken[chain]}")
                continue
            progress(f"burst ({chain})")
            adds, dels = self.burst(chain)
            ok = [s.wall for s in adds if s.ok]
            dok = [s.wall for s in dels if s.ok]
            p50, p99 = median(ok), percentile(ok, 99)
            self.figures[f"burst_ok_{chain}"] = len(ok)
            self.figures[f"burst_ratio_{chain}"] = ratio(p99, p50)
            out(
                f"   ({chain}) {CHAINS[chain]:<54}{len(ok):>3}/{len(adds):<2}"
                f"{ms(p50)}{ms(p99)}{ms(max(ok, default=math.nan))}"
                f"{fmt_ratio(ratio(p99, p50)):>9}   {len(dok)}/{len(dels)}{ms(median(dok))}{ms(percentile(dok, 99))}"
            )
            for s in adds:
                if not s.ok:
                    self.notes.append(f"burst ({chain}) ADD {s.why()}")
                    break
        out()

    # ---- imports

    def run_importtime(self, variants: dict[str, tuple[str, str, str]]) -> None:
        runs = self.import_runs
        python = self.interpreter[0]
        flags = self.interpreter[1:]
        out(f"5. python -X importtime, median of {runs} direct runs each (ms, cumulative: a module and all it")
        out("   imported). 'total' sums the top-level imports made after interpreter start-up; 'top' lists")
        out("   the largest of them; 'pulled in' the largest modules from outside cni_sysctl and who imported them")
        startup_names: set[str] = set()
        startup_us: list[int] = []
        with InNetns(self.host):
            for _ in range(runs):
                sample = self.spawner.run([python, "-X", "importtime", *flags, "-c", "pass"], {"PATH": SYSTEM_PATH})
                entries = parse_importtime(sample.stderr.decode())
                startup_names |= {name for name, _, _ in entries}
                startup_us.append(sum(cum for _, level, cum in entries if level == 0))
            out(f"   {'interpreter start-up (' + ' '.join(flags) + ' -c pass)':<34}{median(startup_us) / 1000:7.2f}")
            for name in (
                "sysctl VERSION",
                "sysctl DEL",
                "sysctl ADD, 3 keys, no bounce",
                "sysctl ADD, 4 keys, bounce",
                "no-op ADD",
            ):
                if name in self.broken:
                    out(f"   {name:<34} NOT MEASURED: {self.broken[name]}")
                    continue
                exe, _, stdin = variants[name]
                top: dict[str, list[int]] = {}
                pulled: dict[tuple[str, str], list[int]] = {}
                totals: list[int] = []
                counts: list[int] = []
                for _ in range(runs):
                    sample = self.spawner.run([python, "-X", "importtime", *flags, exe], self.direct_envs[name], stdin)
                    entries = [e for e in parse_importtime(sample.stderr.decode()) if e[0] not in startup_names]
                    totals.append(sum(cum for _, level, cum in entries if level == 0))
                    counts.append(len(entries))
                    for module, parent, cumulative in with_parents(entries):
                        if parent is None:
                            top.setdefault(module, []).append(cumulative)
                        own = module.startswith("cni_sysctl")
                        if not own and (parent is None or parent.startswith("cni_sysctl")):
                            pulled.setdefault((module, parent or "top level"), []).append(cumulative)
                loaded = {m.split(".")[0] for m in top} | {m.split(".")[0] for m, _ in pulled}
                heavy = sorted(loaded & {"pyroute2", "yaml", "netaddr"})
                self.figures[f"imports {name}"] = median(totals) / 1e6
                out(
                    f"   {name:<34}{median(totals) / 1000:7.2f} total, {int(median(counts))} modules;"
                    f" pyroute2/yaml/netaddr: {', '.join(heavy) or 'none'}"
                )
                ranked = sorted(top.items(), key=lambda kv: -median(kv[1]))[:5]
                out(f"   {'':<34}top: " + ", ".join(f"{m} {median(v) / 1000:.2f}" for m, v in ranked))
                ranked_pulled = sorted(pulled.items(), key=lambda kv: -median(kv[1]))[:5]
                out(
                    f"   {'':<34}pulled in: "
                    + ", ".join(
                        f"{m} {median(v) / 1000:.2f} ({'by ' + p if p != 'top level' else p})"
                        for (m, p), v in ranked_pulled
                    )
                )
        out()

    # ---- targets

    def report_targets(self) -> int:
        f = self.figures
        missed = 0
        out("6. Targets (issue 4)")

        def line(what: str, value: float, limit: float, detail: str, strict: bool = False) -> None:
            nonlocal missed
            if math.isnan(value) or math.isnan(limit):
                verdict = "NOT MEASURED"
                missed += 1
            elif value < limit or (not strict and value == limit):
                verdict = "met"
            else:
                verdict = "MISSED"
                missed += 1
            out(f"   {verdict:<13}{what:<48}{detail}")

        noop = f.get("added_add_e", math.nan)
        for chain, factor, what in (
            ("c", 1.3, "no-bounce ADD added latency <= 1.3 x no-op's"),
            ("d", 3.0, "bounce ADD added latency <= 3 x no-op's"),
        ):
            value = f.get(f"added_add_{chain}", math.nan)
            line(
                what,
                value,
                factor * noop,
                f"({chain})-(a) {ms(value, 0).strip()} ms vs {factor} x {ms(noop, 0).strip()} = "
                f"{ms(factor * noop, 0).strip()} ms ({fmt_ratio(ratio(value, noop))} of no-op)",
            )
        for a, b in (("sysctl DEL", "no-op DEL"), ("sysctl VERSION", "no-op VERSION")):
            value, base = f.get(f"direct {a}", math.nan), f.get(f"direct {b}", math.nan)
            line(
                f"{a.split()[1]} <= 1.1 x no-op (direct, wall p50)",
                value,
                1.1 * base,
                f"{ms(value, 0, 2).strip()} ms vs 1.1 x {ms(base, 0, 2).strip()} = {ms(1.1 * base, 0, 2).strip()} ms"
                f" ({fmt_ratio(ratio(value, base))})",
            )
        for chain in "cd":
            ok = f.get(f"burst_ok_{chain}", math.nan)
            line(
                f"{self.burst_size} concurrent ADDs ({chain}): all succeed",
                ok,
                self.burst_size,
                f"{'n/a' if math.isnan(ok) else int(ok)}/{self.burst_size}",
            )
            if not math.isnan(ok) and ok < self.burst_size:
                out(f"   {'':<13}(counted as missed above: not every ADD succeeded)")
                missed += 1
            value = f.get(f"burst_ratio_{chain}", math.nan)
            line(
                f"{self.burst_size} concurrent ADDs ({chain}): p99 <= 3 x p50",
                value,
                3.0,
                f"p99/p50 = {fmt_ratio(value)}",
            )
        value = f.get("per_key", math.nan)
        line("each additional key < 0.1 ms", value, 0.0001, f"{ms(value, 0, 4).strip()} ms per key", strict=True)
        out()
        if self.notes:
            out("notes")
            for note in self.notes[:20]:
                out(f"   - {note}")
            if len(self.notes) > 20:
                out(f"   ... and {len(self.notes) - 20} more")
            out()
        return missed

    # ---- everything

    def run(self) -> int:
        self.header()
        progress("warm-up")
        self.warm_up()
        samples = self.run_cycles()
        self.report_cycles(samples)
        progress("direct invocations")
        variants = self.direct_setup()
        direct = self.run_direct(variants)
        self.report_direct(variants, direct)
        self.run_bursts()
        progress("importtime")
        self.run_importtime(variants)
        return self.report_targets()

    def cleanup(self) -> None:
        self.spawner.kill_all()
        self.ns.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=None, help="cycles and direct reps (default 30; --quick: 5)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 cycles, bursts of 10, 3 importtime runs")
    parser.add_argument("--burst", type=int, default=None, help="concurrent ADDs per burst (default 50; --quick: 10)")
    parser.add_argument("--import-runs", type=int, default=None, help="importtime runs per command (default 5)")
    args = parser.parse_args(argv)
    args.cycles = args.cycles or (5 if args.quick else 30)
    args.burst = args.burst or (10 if args.quick else 50)
    args.import_runs = args.import_runs or (3 if args.quick else 5)
    if os.geteuid() != 0:
        print(
            "bench: run as root (it creates network namespaces): sudo .venv/bin/python bench/bench.py", file=sys.stderr
        )
        return 2
    for path in (CNITOOL, *(os.path.join(DEBIAN_PLUGINS, p) for p in ("bridge", "host-local", "tuning"))):
        if not os.access(path, os.X_OK):
            print(f"bench: {path} is missing: run tools/bootstrap.sh", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _terminate)
    bench = Bench(args)
    try:
        bench.setup()
        missed = bench.run()
    except KeyboardInterrupt:
        print("bench: interrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        bench.cleanup()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return 0 if missed == 0 else 3


if __name__ == "__main__":
    raise SystemExit(main())
