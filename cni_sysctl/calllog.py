"""One structured line per CNI call, for operators: what was asked, what was done, how it ended.

    {"time": "2026-11-30T19:04:30.123Z", "command": "ADD", "container": "...", "netns": "...",
     "ifname": "eth0", "ifnames": ["eth0"], "keys": ["net.ipv6.conf.eth0.accept_ra"],
     "bounce": ["eth0"], "duration_ms": 41.2, "code": 0}

`code` is 0 for success, else the CNI error code the call printed. The writes and the bounce are
learned through the transaction's hook (ports.Ports.hook): the plan it applied. The daemon writes
these lines to its stderr; a plugin configuration's `logFile` gets them in direct mode.
"""

from __future__ import annotations

import json
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .plan import Plan

    Hook = Callable[[str, object], None]


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
                code = int(json.loads(stdout).get("code", 999))
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

    def line(self, environ: Mapping[str, str], rc: int, stdout: str) -> str:
        return json.dumps(self.record(environ, rc, stdout), separators=(",", ":"), ensure_ascii=True) + "\n"
