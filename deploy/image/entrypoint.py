#!/opt/cni-sysctl/bin/python3 -I
"""The entrypoint of the cni-sysctl node image (installed as /opt/cni-sysctl/bin/cni-sysctl-node).

    cni-sysctl-node [run]   install the policy and the shim on the node, then become the daemon
    cni-sysctl-node ready   the readiness check: is this container's daemon serving the socket?

`run`, in this order, each step complete before the next:

1. The policy, when the ConfigMap provides one (CNI_SYSCTL_POLICY_SOURCE; a ConfigMap's file
   is a symlink into a timestamped directory, so its content is read, never the link copied):
   written beside /etc/cni/cni-sysctl.yaml under a temporary name, owned by root, mode 0644,
   fsync'd, checked with `cni-sysctl policy check` exactly as ADD will read it, then renamed
   over the old file and the directory fsync'd. A policy that fails the check stops the
   container before anything on the node changed: with the DaemonSet's surge update the
   previous pod keeps serving the previous policy. Without a policy in the ConfigMap the node's
   file is left as it is.
2. The shim: `cni-sysctl install --mode daemon` into the host's CNI bin dir (temporary name,
   fsync, run once, rename), forwarding to CNI_SYSCTL_SOCKET. That path is written into the
   shim and used by runtimes on the host, so the pod mounts the host's directory at the same
   path. No fallback launcher: the node may have no Python.
3. exec `cni-sysctl daemon`: it binds a new socket and renames it over the path, so a daemon
   already serving there (the previous pod's, during a rolling update) hands over without a
   refused connection; SIGTERM drains the calls in flight.

`ready` passes when the daemon listening on the socket is the one of this container (its pid is
visible in this container's pid namespace; the previous pod's daemon, still serving during a
surge update, is not) and it answers `cni-sysctl daemon --check`.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import uuid
from typing import NoReturn

from cni_sysctl.config import DEFAULT_POLICY
from cni_sysctl.daemon import DEFAULT_SOCKET

NAME = "cni-sysctl-node"
# The settings, from the environment (the DaemonSet sets each one explicitly).
SETTINGS = {
    "CNI_SYSCTL_BIN_DIR": "/host/opt/cni/bin",  # the host's /opt/cni/bin, mounted
    "CNI_SYSCTL_SOCKET": DEFAULT_SOCKET,  # the same path on the host and in the pod
    "CNI_SYSCTL_POLICY_SOURCE": "/etc/cni-sysctl/policy/cni-sysctl.yaml",  # the ConfigMap's key
    "CNI_SYSCTL_REQUEST_TIMEOUT": "30",  # seconds; below the pod's terminationGracePeriodSeconds
}
MAX_POLICY_BYTES = 1 << 20  # what ADD reads at most (policyfile.MAX_BYTES)
CNI_SYSCTL = os.path.join(os.path.dirname(sys.executable), "cni-sysctl")


class Failure(Exception):
    """A step that failed: the message says what and what was left untouched."""


def log(message: str) -> None:
    sys.stderr.write(f"{NAME}: {message}\n")
    sys.stderr.flush()


def settings(environ: dict[str, str]) -> dict[str, str]:
    return {name: environ.get(name) or default for name, default in SETTINGS.items()}


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install_policy(source: str, target: str = DEFAULT_POLICY) -> bool:
    """Copy the content of `source` over `target` atomically, once `cni-sysctl policy check`
    accepts it in place. False when there is no `source` (nothing is changed)."""
    try:
        with open(source, "rb") as f:  # follows the ConfigMap's symlinks
            data = f.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise Failure(f"cannot read the policy {source}: {exc.strerror}; {target} left as it is") from exc
    if len(data) > MAX_POLICY_BYTES:
        raise Failure(f"the policy {source} is over {MAX_POLICY_BYTES} bytes; {target} left as it is")
    directory = os.path.dirname(target)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    # A random name: two pods of the DaemonSet on one node (a surge update) both run as pid 1.
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, data)
            os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)
        check = subprocess.run([CNI_SYSCTL, "policy", "check", tmp], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            why = check.stderr.strip().replace(tmp, source)
            raise Failure(f"the policy {source} is refused: {why}; {target} left as it is")
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    _fsync_directory(directory)
    return True


def install_shim(bin_dir: str, socket_path: str) -> str:
    proc = subprocess.run(
        [CNI_SYSCTL, "install", "--mode", "daemon", "--bin-dir", bin_dir, "--socket", socket_path],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise Failure(f"cni-sysctl install failed: {(proc.stdout + proc.stderr).strip()}")
    return proc.stdout.strip()


def run(environ: dict[str, str]) -> int:
    conf = settings(environ)
    source = conf["CNI_SYSCTL_POLICY_SOURCE"]
    try:
        if install_policy(source):
            log(f"installed the policy {source} as {DEFAULT_POLICY}")
        else:
            state = "present" if os.path.lexists(DEFAULT_POLICY) else "absent: the built-in default set applies"
            log(f"no policy at {source}: {DEFAULT_POLICY} left as it is ({state})")
        log(install_shim(conf["CNI_SYSCTL_BIN_DIR"], conf["CNI_SYSCTL_SOCKET"]))
    except Failure as exc:
        log(str(exc))
        return 1
    return exec_daemon(conf)


def exec_daemon(conf: dict[str, str]) -> NoReturn:
    """Become `cni-sysctl daemon` (pid 1 of the pod: SIGTERM from the kubelet reaches it)."""
    argv = [CNI_SYSCTL, "daemon", "--socket", conf["CNI_SYSCTL_SOCKET"]]
    argv += ["--request-timeout", conf["CNI_SYSCTL_REQUEST_TIMEOUT"]]
    log(f"exec {' '.join(argv)}")
    os.execv(CNI_SYSCTL, argv)  # noqa: S606 - a fixed argv, no shell


def listener_pid(socket_path: str) -> int:
    """The pid, in this pid namespace, of the process that listens on `socket_path` (0 when it
    lives in a pid namespace this one cannot see)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(5.0)
        sock.connect(socket_path)
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid: int = struct.unpack("3i", creds)[0]
    return pid


def ready(environ: dict[str, str]) -> int:
    socket_path = settings(environ)["CNI_SYSCTL_SOCKET"]
    try:
        pid = listener_pid(socket_path)
    except OSError as exc:
        log(f"not ready: cannot connect to {socket_path}: {exc}")
        return 1
    if pid == 0:
        log(f"not ready: {socket_path} is served by a daemon outside this container (the previous pod's?)")
        return 1
    check = subprocess.run([CNI_SYSCTL, "daemon", "--check", "--socket", socket_path], check=False)
    return check.returncode


def main(argv: list[str], environ: dict[str, str]) -> int:
    command = argv[0] if argv else "run"
    if command == "run" and len(argv) <= 1:
        return run(environ)
    if command == "ready" and len(argv) == 1:
        return ready(environ)
    sys.stderr.write(f"usage: {NAME} [run | ready]\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], dict(os.environ)))
