"""Spawning measured commands: posix_spawn + wait4, and the probe that keeps RSS honest.

A child's ru_maxrss is never below the RSS of the process it was spawned from: exec records the
peak of the address space it replaces (with posix_spawn's vfork, this benchmark's ~16 MB). So
every figure with an RSS comes from a small probe, a bare `python -IS` that spawns the command,
times it (wall: spawn .. wait4, perf_counter) and reports the command's own wait4 rusage. The
probe's own start-up is outside the timing; its peak (the RSS floor of the header) is that of a
bare `python -IS`, below any Python plugin's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from .errors import BenchError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import resource

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


GROUP_GRACE = 2.0  # seconds a killed child's process group has to go before SIGKILL


class Sample:
    """One finished child: wall time (s), exit code and its wait4 rusage (the child and every
    descendant it waited for: for cnitool, the whole chain of plugins)."""

    __slots__ = ("cpu", "maxrss_kb", "rc", "stderr", "stdout", "wall")

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
    """A started child, not yet reaped."""

    __slots__ = ("pid", "started", "stderr_path", "stdout_path")

    def __init__(self, pid: int, started: float, stdout_path: str, stderr_path: str) -> None:
        self.pid = pid
        self.started = started
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path


class Spawner:
    """posix_spawn + wait4: no Python fork in the measured path, rusage per child, and every
    child still running known by pid (each the leader of its own process group), so that an
    interrupted run can end them and all they started."""

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
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setpgroup=0)
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

    def stop(self, job: Job, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Signal a long-running child (a server a setup started) and reap it; SIGKILL to its
        group if it lingers. Its exit code, None if it was already gone."""
        if job.pid not in self.live:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(job.pid, sig)
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(job.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job.pid, signal.SIGKILL)
                _, status = os.waitpid(job.pid, 0)
                break
            time.sleep(0.02)
        self.live.discard(job.pid)
        return os.waitstatus_to_exitcode(status)

    def kill_all(self) -> None:
        """End the children still running and everything they started, and reap them.

        Each child leads its own process group (pgid = its pid), so that its descendants, a
        probe's command, `ip netns exec`'s cnitool and the plugins it runs, go with it: a killed
        probe would otherwise leave them running, writing into a directory already removed.
        """
        groups = list(self.live)
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        for pid in groups:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.live.discard(pid)
        deadline = time.monotonic() + GROUP_GRACE
        for pgid in groups:
            while _group_alive(pgid):
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pgid, signal.SIGKILL)
                    break
                time.sleep(0.01)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def check_output(*argv: str) -> str:
    """Run a setup command (not measured); its stdout, or BenchError naming it and its stderr."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout
