"""`cni-sysctl install`: place the plugin executable in the CNI bin directory.

Runtimes start plugins with almost no environment, from any directory. The launcher written
here names its interpreter by absolute path, runs it isolated and without the site module
(`-IS`: no PYTHONPATH, no user site, no .pth crawl), and appends exactly the directories that
hold cni_sysctl and its dependencies to sys.path: after the standard library, so that its
imports (json, re, ...) are found without looking there first; none of these names is a
standard-library one. No entry-point scanning happens at start-up.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

DEFAULT_BIN_DIR = "/opt/cni/bin"
NAME = "cni-sysctl"
_DEPENDENCIES = ("cni_sysctl", "pyroute2", "yaml")

# If an import root is gone (the venv was upgraded or moved), the runtime still gets a CNI
# error object on stdout, with the fix, instead of a traceback and an empty stdout.
LAUNCHER = """\
#!{python} -IS
# cni-sysctl CNI plugin launcher, written by `cni-sysctl install`; rerun it after upgrading.
import sys
sys.path += {paths!r}
try:
    from cni_sysctl.cli import main
except ImportError as exc:
    import json
    error = {{
        "cniVersion": "1.1.0",
        "code": 106,
        "msg": f"cni-sysctl cannot start: {{exc}}",
        "details": f"its installation moved or was upgraded: rerun `cni-sysctl install` (launcher {{__file__}})",
    }}
    sys.stdout.write(json.dumps(error) + "\\n")
    raise SystemExit(1)
raise SystemExit(main())
"""


def search_paths() -> list[str]:
    """The import roots of cni_sysctl and its runtime dependencies, in this interpreter."""
    from importlib.util import find_spec

    paths: list[str] = []
    for name in _DEPENDENCIES:
        spec = find_spec(name)
        if spec is None or spec.origin is None:
            raise SystemExit(f"cni-sysctl install: {name} is not importable by {sys.executable}")
        root = os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))
        if root not in paths:
            paths.append(root)
    return paths


def launcher_text(python: str, paths: list[str]) -> str:
    return LAUNCHER.format(python=python, paths=paths)


def check_plugin(path: str) -> str | None:
    """Run the plugin at `path` once, as a runtime asks VERSION; why it fails, or None."""
    import subprocess

    env = {"CNI_COMMAND": "VERSION", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    try:
        proc = subprocess.run(
            [path], input=b'{"cniVersion":"1.0.0"}', env=env, cwd="/", capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0 or b"supportedVersions" not in proc.stdout:
        return f"exit {proc.returncode}: {(proc.stdout + proc.stderr).decode(errors='replace').strip()[:500]}"
    return None


def _place(target: str, content: bytes) -> str:
    """Write `content` to a temporary name beside `target` (same directory: the rename is
    atomic), fsync it, run it once (VERSION), then rename it over `target`: a runtime never
    executes a half-written or broken plugin, and one already running the old file keeps it."""
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    # a name no other installer uses (two pods of a DaemonSet may install at once: pids repeat)
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{os.urandom(6).hex()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o755)
        try:
            os.write(fd, content)
            os.fchmod(fd, 0o755)  # a plugin executable, as the others in the CNI bin dir
            os.fsync(fd)
        finally:
            os.close(fd)
        problem = check_plugin(tmp)
        if problem is not None:
            raise SystemExit(f"cni-sysctl install: the new {target} does not run ({problem}); the old one is untouched")
        os.replace(tmp, target)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)  # the rename itself is durable
        finally:
            os.close(dir_fd)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return target


def install(bin_dir: str, python: str | None = None, name: str = NAME) -> str:
    """The Python launcher, as `bin_dir`/`name`."""
    text = launcher_text(python or sys.executable, search_paths())
    return _place(os.path.join(bin_dir, name), text.encode())


# --- daemon mode: the shim ------------------------------------------------------------------

SHIM_MARKER = b"CNI_SYSCTL_SHIM_CONFIG_V1:"
SHIM_BLOCK = 1024
FALLBACK_NAME = "cni-sysctl-direct"


def find_shim() -> str:
    """The built shim: $CNI_SYSCTL_SHIM, else beside the package's installation
    (<prefix>/lib/cni-sysctl/cni-sysctl-shim), else a development checkout's .build/."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [
        os.environ.get("CNI_SYSCTL_SHIM", ""),
        os.path.join(sys.prefix, "lib", "cni-sysctl", "cni-sysctl-shim"),
        "/usr/local/lib/cni-sysctl/cni-sysctl-shim",
        os.path.join(here, ".build", "cni-sysctl-shim"),
    ]
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    raise SystemExit(
        "cni-sysctl install: no daemon-mode shim found (looked at "
        + ", ".join(c for c in candidates if c)
        + "); build it with shim/build.sh, or pass --shim FILE"
    )


def patch_shim(binary: bytes, socket: str, fallback: str | None) -> bytes:
    """The shim with its settings block rewritten (docs/daemon.md): socket, fallback."""
    if binary.count(SHIM_MARKER) != 1:
        raise SystemExit("cni-sysctl install: the shim has no (or more than one) settings block; rebuild it")
    lines = f"socket={socket}\n" + (f"fallback={fallback}\n" if fallback else "")
    block = SHIM_MARKER + lines.encode()
    if len(block) > SHIM_BLOCK or "\0" in lines:
        raise SystemExit("cni-sysctl install: the socket and fallback paths do not fit the shim's settings block")
    at = binary.index(SHIM_MARKER)
    return binary[:at] + block.ljust(SHIM_BLOCK, b"\0") + binary[at + SHIM_BLOCK :]


def install_shim(bin_dir: str, socket: str, fallback: bool, shim: str | None = None) -> str:
    """The daemon-mode shim as `bin_dir`/cni-sysctl, forwarding to `socket`; with `fallback`,
    the Python launcher too (`bin_dir`/cni-sysctl-direct), which the shim runs when the daemon
    cannot be reached."""
    fallback_path = None
    if fallback:
        fallback_path = install(bin_dir, name=FALLBACK_NAME)
    with open(shim or find_shim(), "rb") as f:
        binary = f.read()
    return _place(os.path.join(bin_dir, NAME), patch_shim(binary, socket, fallback_path))


USAGE = """\
usage: cni-sysctl install [--bin-dir DIR] [--mode direct|daemon] [--socket PATH] [--fallback] [--shim FILE]
  direct (default): DIR/cni-sysctl is a Python launcher of this installation
  daemon: DIR/cni-sysctl is the static shim that forwards every call to `cni-sysctl daemon`
          on --socket (default {socket}); --fallback also installs DIR/{fallback}, the
          launcher the shim runs when the daemon cannot be reached
"""


def main(argv: list[str], stdout: TextIO, stderr: TextIO) -> int:
    from .daemon import DEFAULT_SOCKET

    options = {"--bin-dir": DEFAULT_BIN_DIR, "--mode": "direct", "--socket": DEFAULT_SOCKET, "--shim": ""}
    fallback = False
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in options and (eq or args):
            options[name] = value if eq else args.pop(0)
        elif arg == "--fallback":
            fallback = True
        else:
            stderr.write(USAGE.format(socket=DEFAULT_SOCKET, fallback=FALLBACK_NAME))
            return 2
    bin_dir, mode, socket = options["--bin-dir"], options["--mode"], options["--socket"]
    if mode not in ("direct", "daemon") or (mode == "direct" and (fallback or options["--shim"])):
        stderr.write(USAGE.format(socket=DEFAULT_SOCKET, fallback=FALLBACK_NAME))
        return 2
    if not socket.startswith("/") or len(socket.encode()) > 107:
        stderr.write(f"cni-sysctl install: --socket must be an absolute path of at most 107 bytes: {socket!r}\n")
        return 2
    try:
        if mode == "direct":
            target = install(bin_dir)
            stdout.write(f"installed {target} (interpreter {sys.executable})\n")
        else:
            target = install_shim(bin_dir, socket, fallback, options["--shim"] or None)
            extra = f", fallback {os.path.join(bin_dir, FALLBACK_NAME)}" if fallback else ""
            stdout.write(f"installed {target} (daemon mode: forwards to {socket}{extra})\n")
    except OSError as exc:
        stderr.write(f"cni-sysctl install: cannot write to {bin_dir}: {exc.strerror}\n")
        return 1
    return 0
