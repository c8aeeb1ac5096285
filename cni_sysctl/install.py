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


def check_launcher(path: str) -> str | None:
    """Run the launcher at `path` once, as a runtime would ask VERSION; why it fails, or None."""
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


def install(bin_dir: str, python: str | None = None) -> str:
    """Write the launcher to a temporary name in `bin_dir`, run it once (VERSION), then rename
    it into place: a runtime never executes a half-written or broken plugin."""
    python = python or sys.executable
    os.makedirs(bin_dir, exist_ok=True)
    target = os.path.join(bin_dir, NAME)
    tmp = f"{target}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(launcher_text(python, search_paths()))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o755)  # noqa: S103 - a plugin executable, as the others in the CNI bin dir
        problem = check_launcher(tmp)
        if problem is not None:
            raise SystemExit(f"cni-sysctl install: the new launcher does not run ({problem}); {target} left as it was")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def main(argv: list[str], stdout: TextIO, stderr: TextIO) -> int:
    bin_dir = DEFAULT_BIN_DIR
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--bin-dir" and args:
            bin_dir = args.pop(0)
        elif arg.startswith("--bin-dir="):
            bin_dir = arg.split("=", 1)[1]
        else:
            stderr.write("usage: cni-sysctl install [--bin-dir DIR]\n")
            return 2
    try:
        target = install(bin_dir)
    except OSError as exc:
        stderr.write(f"cni-sysctl install: cannot write to {bin_dir}: {exc.strerror}\n")
        return 1
    stdout.write(f"installed {target} (interpreter {sys.executable})\n")
    return 0
