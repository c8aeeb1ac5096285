"""How should the daemon isolate requests? Three models behind the same shim, measured side by side.

    sudo .venv/bin/python -m bench.worker_models [--calls N] [--burst N]

issue 10 asks for a forked child per request or worker threads that each enter and leave the
netns, measured, and the choice written down (docs/daemon.md, "The daemon"). Each model serves
the daemon's own request handler (`worker.handle`: the wire, the CNI pipeline, the call log):

  fork     a prototype: the warm parent forks a child per accepted connection, which serves it
           and exits
  thread   a prototype: a thread per accepted connection, which enters the container netns on
           its own thread (setns is per thread) and leaves it
  pool     `cni-sysctl daemon` itself: a pool of forked workers, each serving one call at a time

For each: the p50 of N sequential ADDs through the installed shim (no bounce, then with a link
bounce), then a burst of concurrent ADDs (wall time of the whole burst and p50 of its calls).
ADDs go into throwaway veth netns (tests/netlab.py's Box), all removed at the end; servers are
stopped by pid. Needs root and a built shim (shim/build.sh). Prints a table; measures, asserts
nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cni_sysctl import daemon, worker
from tests import netlab
from tests.netlab import Box, Daemon, cni_env, exec_plugin, install_plugin, plugin_config

NO_BOUNCE = ["net.core.somaxconn=600", "ipv4.conf.rp_filter=2"]
BOUNCE = ["ipv6.conf.addr_gen_mode=1"]


def _listen(path: str) -> socket.socket:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(128)
    return sock


def _server(path: str, dispatch: Callable[[socket.socket, int], None]) -> int:
    """A child process that preloads what an ADD needs, listens on `path` and hands every
    connection to `dispatch(conn, log_fd)`; its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:
        daemon._preload()
        listener = _listen(path)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked handlers reaped by the kernel
        log = os.open(os.devnull, os.O_WRONLY)
        while True:
            conn, _ = listener.accept()
            dispatch(conn, log)
    finally:
        os._exit(1)


def _fork_per_request(conn: socket.socket, log: int) -> None:
    if os.fork() == 0:
        worker.handle(conn, log)
        os._exit(0)
    conn.close()


def _thread_per_request(conn: socket.socket, log: int) -> None:
    def serve() -> None:
        with conn:
            worker.handle(conn, log)

    threading.Thread(target=serve, daemon=True).start()


SERVERS = {"fork": _fork_per_request, "thread": _thread_per_request}


def wait_ready(path: str) -> None:
    deadline = time.monotonic() + 20
    while daemon.check(path, timeout=2.0) is not None:
        if time.monotonic() > deadline:
            raise SystemExit(f"worker_models: the server on {path} does not answer")
        time.sleep(0.05)


def sequential(shim: str, boxes: list[Box], keys: list[str], calls: int) -> float:
    times = []
    for i in range(calls):
        box = boxes[i % len(boxes)]
        start = time.perf_counter()
        out = exec_plugin(shim, cni_env("ADD", box.path), plugin_config("1.0.0", keys, box.prev_result()))
        times.append(time.perf_counter() - start)
        if out.rc != 0:
            raise SystemExit(f"worker_models: ADD failed: {out.stdout} {out.stderr}")
    return statistics.median(times) * 1000


def burst(shim: str, boxes: list[Box], keys: list[str]) -> tuple[float, float, int]:
    """Wall time of the whole burst, p50 of its calls (ms), how many succeeded."""
    results: list[tuple[float, int]] = []
    lock = threading.Lock()

    def one(box: Box) -> None:
        start = time.perf_counter()
        out = exec_plugin(shim, cni_env("ADD", box.path), plugin_config("1.0.0", keys, box.prev_result()))
        with lock:
            results.append((time.perf_counter() - start, out.rc))

    threads = [threading.Thread(target=one, args=(box,)) for box in boxes]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return wall * 1000, statistics.median(r[0] for r in results) * 1000, sum(1 for r in results if r[1] == 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_models", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="sequential ADDs per model and config (100)")
    parser.add_argument("--burst", type=int, default=20, help="concurrent ADDs of the burst (20)")
    opts = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("worker_models: run as root (it creates network namespaces)", file=sys.stderr)
        return 1
    made: list[str] = []

    def make_netns(prefix: str) -> str:
        name = netlab.unique(prefix)
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        return name

    tmp = Path(tempfile.mkdtemp(prefix="cni-sysctl-workers."))
    pids: list[int] = []
    pool: Daemon | None = None
    rows: list[tuple[str, float, float, float, float, int]] = []
    try:
        boxes = [Box(make_netns) for _ in range(opts.burst)]
        for model in ("fork", "thread", "pool"):
            path = str(tmp / model / "run" / "cni-sysctl.sock")
            if model == "pool":
                (tmp / model).mkdir()
                pool = Daemon(tmp / model)
                pool.start()
            else:
                pids.append(_server(path, SERVERS[model]))
                wait_ready(path)
            shim = install_plugin(tmp / f"bin-{model}", "daemon", path)
            figures = []
            for keys in (NO_BOUNCE, BOUNCE):
                sequential(shim, boxes, keys, min(10, opts.calls))  # warm
                figures.append(sequential(shim, boxes, keys, opts.calls))
            wall, p50, ok = burst(shim, boxes, ["net.core.somaxconn=601"])
            rows.append((model, figures[0], figures[1], wall, p50, ok))
            print(f"worker_models: {model} measured", file=sys.stderr)
    finally:
        if pool is not None:
            pool.stop()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    print(f"{'model':<8}{'no bounce p50':>15}{'bounce p50':>12}   burst of {opts.burst}: wall / p50 / ok")
    for model, plain, bounced, wall, p50, ok in rows:
        print(f"{model:<8}{plain:>12.1f} ms{bounced:>9.1f} ms   {wall:6.0f} ms / {p50:4.0f} ms / {ok}/{opts.burst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
