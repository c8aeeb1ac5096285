"""One structured line per CNI call, for operators: what was asked, what was done, how it ended.

    {"time": "2026-11-30T19:04:30.123Z", "command": "ADD", "container": "...", "netns": "...",
     "ifname": "eth0", "ifnames": ["eth0"], "keys": ["net.ipv6.conf.eth0.accept_ra"],
     "bounce": ["eth0"], "duration_ms": 41.2, "code": 0}

`code` is 0 for success, else the CNI error code the call printed. The writes and the bounce are
learned through the transaction's hook (ports.Ports.hook): the plan it applied. The daemon writes
these lines to its stderr; a plugin configuration's `logFile` gets them too, in both modes:

    "logFile": "/var/log/cni-sysctl/calls.log", "logLevel": "verbose"

`logLevel`: "error" (failed calls only), "verbose" (every call, the default), "debug" (every
call, with the notes the plugin wrote on stderr: values restored, values the kernel rounded).
The file is opened O_APPEND and each line written in one write(2), so concurrent calls never
interleave; it is created 0600. A conflist may be written by someone the node does not trust
(a NetworkAttachmentDefinition's author), and the plugin runs as root: so the file must be
under /var/log/cni-sysctl/ (a directory of cni-sysctl's alone: no other program's file can be
appended to), a regular file, not a symbolic link. A log that cannot be written is reported
on stderr and never fails the call.
"""

from __future__ import annotations

import os
import time

from .jsonio import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import TextIO

    from .plan import Plan

    Hook = Callable[[str, object], None]


LOG_LEVELS = ("error", "verbose", "debug")
LOG_DIR = "/var/log/cni-sysctl/"  # root's; nothing but cni-sysctl's logs in it


def log_file_problem(path: object) -> str | None:
    """Why `path` cannot be a logFile (None when it can)."""
    if not isinstance(path, str) or "\0" in path:
        return "must be a path"
    try:
        path.encode()
    except UnicodeEncodeError:
        return "must be UTF-8 text"
    if os.path.normpath(path) != path or not path.startswith(LOG_DIR) or path == LOG_DIR:
        return (
            f"must be a normalised path under {LOG_DIR} (the plugin runs as root and a conflist's "
            "author may not: it may only append to cni-sysctl's own logs)"
        )
    return None


class CallLog:
    """Watches one call (its hook, chained before `inner`) and renders its line."""

    def __init__(self, inner: Hook | None = None) -> None:
        self.inner = inner
        self.plan: Plan | None = None
        self.started = time.monotonic()

    def hook(self, step: str, detail: object) -> None:
        if step == "resolve":
            self.plan = detail  # type: ignore[assignment]  # transaction passes the plan here
        if self.inner is not None:
            self.inner(step, detail)

    def record(self, environ: Mapping[str, str], rc: int, stdout: str) -> dict[str, object]:
        code = 0
        if rc != 0:
            try:
                code = int(loads(stdout).get("code", 999))  # type: ignore[attr-defined]
            except (ValueError, AttributeError, TypeError):
                code = 999
        plan = self.plan
        now = time.time()
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
            "command": environ.get("CNI_COMMAND", ""),
            "container": environ.get("CNI_CONTAINERID", ""),
            "netns": environ.get("CNI_NETNS", ""),
            "ifname": environ.get("CNI_IFNAME", ""),
            "ifnames": list(plan.ifnames) if plan is not None else [],
            "keys": [w.name for w in plan.final()] if plan is not None else [],
            "bounce": list(plan.bounce_ifnames) if plan is not None else [],
            "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
            "code": code,
        }

    def line(self, environ: Mapping[str, str], rc: int, stdout: str, notes: list[str] | None = None) -> str:
        record = self.record(environ, rc, stdout)
        if notes is not None:
            record["notes"] = notes
        return dumps(record) + "\n"  # ASCII

    def to_file(
        self,
        config: Mapping[str, object],
        environ: Mapping[str, str],
        rc: int,
        stdout: str,
        notes: list[str],
        stderr: TextIO,
    ) -> None:
        """Append this call's line to the configuration's logFile, as its logLevel says."""
        import stat

        path, level = config.get("logFile"), config.get("logLevel", "verbose")
        if log_file_problem(path) is not None or level not in LOG_LEVELS or (level == "error" and rc == 0):
            return
        assert isinstance(path, str)
        line = self.line(environ, rc, stdout, notes if level == "debug" else None).encode()
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
            fd = os.open(path, flags, 0o600)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise OSError(0, "not a regular file")
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            stderr.write(f"cni-sysctl: cannot write to logFile {path}: {exc.strerror}\n")


def log_event(fd: int, record: dict[str, object]) -> None:
    """One line of the daemon's own events (listening, draining, a refused peer...) on `fd`."""
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
    try:  # noqa: SIM105 - contextlib would cost every call an import; a lost line fails nothing
        os.write(fd, (dumps(record) + "\n").encode())
    except OSError:
        pass
