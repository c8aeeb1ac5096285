"""The only edge: dispatch on CNI_COMMAND or an operator subcommand, apply the version gates,
map every failure to a CNI error object. The only module that prints or returns an exit code.

stdout carries exactly one JSON document (a result, version info or an error object); logs go
to stderr.
"""

from __future__ import annotations

import io
import os
import sys

from . import MAX_STDIN, SUPPORTED_VERSIONS, __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import BinaryIO, TextIO

    from .ports import Ports

ABOUT = "cni-sysctl v{version}: sets network sysctls inside a container's network namespace (CNI meta plugin)"
USAGE = """\
{about}
CNI protocol versions supported: {versions}

As a CNI plugin it is run by a container runtime with CNI_COMMAND set; chain it after an
interface-creating plugin in a conflist: {{"type": "cni-sysctl", "sysctl": [...]}}.
Operator commands:
  cni-sysctl install [--bin-dir DIR] [--mode direct|daemon] [--socket PATH] [--fallback] [--shim FILE]
                                        place the cni-sysctl executable in DIR (/opt/cni/bin):
                                        the Python launcher, or the daemon-mode shim
  cni-sysctl daemon [--socket PATH] [--request-timeout S] [--check]
                                        serve the shim's calls (daemon mode); --check: is it up
  cni-sysctl explain [FILE] [--args JSON] [--runtime-config JSON] [--policy FILE] [--ifname NAME]
                                        show what a config (or conflist) would write, and
                                        the policy's verdict on every key
  cni-sysctl policy check FILE          validate a policy file the way ADD reads it
  cni-sysctl --version
"""


def _dump(obj: object) -> str:
    from .jsonio import dumps

    return dumps(obj)  # compact, as json.dumps(separators=(",", ":")), without importing json


def _at_least(version: str, floor: str, command: str) -> None:
    from .config import version_tuple
    from .errors import VersionError

    if version_tuple(version) < version_tuple(floor):
        raise VersionError(
            f"config version {version} does not allow {command}", f"{command} needs cniVersion >= {floor}"
        )


def _version_info(data: bytes) -> str | None:
    """The VERSION answer, in the cniVersion asked for; None when stdin is not a usable config
    (run_cni then reports the decoding error)."""
    from .jsonio import loads

    version: object = SUPPORTED_VERSIONS[-1]
    if data.strip():
        try:
            version = loads(data).get("cniVersion") or version  # type: ignore[attr-defined]
        except (ValueError, AttributeError, RecursionError):
            return None
    if not isinstance(version, str):
        return None
    return _dump({"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}) + "\n"


class _Call:
    """One invocation's stdin, decoded once: the error object reuses its cniVersion."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.obj: dict[str, object] | None = None

    def check_size(self) -> None:
        from .config import decode

        if len(self.data) > MAX_STDIN:
            decode(self.data)  # raises the size error

    def decoded(self) -> dict[str, object]:
        from .config import decode

        if self.obj is None:
            self.obj = decode(self.data)
        return self.obj

    def error_version(self) -> str:
        """The cniVersion to put in an error object: the config's when it has a usable one."""
        version = self.obj.get("cniVersion") if self.obj is not None else None
        return version if isinstance(version, str) and version else SUPPORTED_VERSIONS[-1]


def run_cni(environ: Mapping[str, str], call: _Call, stderr: TextIO, ports: Ports, notes: list[str]) -> str:
    """Dispatch one CNI command; returns what it prints on stdout. Each branch imports only what
    it uses: every container start pays for the imports of ADD and DEL (README, "Performance")."""
    from . import commands
    from .config import cni_version_of, parse_config
    from .request import check_environment_size, read_request

    def log(msg: str) -> None:
        notes.append(msg)
        stderr.write(f"cni-sysctl: {msg}\n")

    call.check_size()
    check_environment_size(environ)
    req = read_request(environ)
    cmd = req.command
    if cmd == "VERSION":
        from .errors import CniError

        # main() answers VERSION before it gets here unless stdin was unusable: say why (a
        # decoding or version error), or, failing that, answer as main() would.
        cni_version_of(call.decoded())
        info = _version_info(call.data)
        if info is None:
            raise CniError("cannot answer VERSION for this configuration")
        return info
    if cmd == "DEL":
        commands.cmd_del(req, cni_version_of(call.decoded()), log, ports)
        return ""
    version = cni_version_of(call.decoded())
    if cmd in ("CHECK", "STATUS", "GC"):
        _at_least(version, "0.4.0" if cmd == "CHECK" else "1.1.0", cmd)
    config = parse_config(call.decoded(), need_prev_result=cmd == "ADD")
    if cmd == "ADD":
        return _dump(commands.cmd_add(req, config, log, ports)) + "\n"
    if cmd == "CHECK":
        commands.cmd_check(req, config, log, ports)
    elif cmd == "STATUS":
        commands.cmd_status(config, log)
    elif cmd == "GC":
        commands.cmd_gc(config, log, ports)
    return ""


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    stdin: BinaryIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    ports: Ports | None = None,
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    # A runtime that started the plugin with fd 0, 1 or 2 closed: Python leaves that stream None.
    # stdin then reads as empty (as the daemon-mode shim's /dev/null does); what cannot be
    # written is dropped.
    stdin = stdin if stdin is not None else (sys.stdin.buffer if sys.stdin is not None else io.BytesIO())
    stdout = stdout if stdout is not None else (sys.stdout if sys.stdout is not None else io.StringIO())
    stderr = stderr if stderr is not None else (sys.stderr if sys.stderr is not None else io.StringIO())

    if argv and not environ.get("CNI_COMMAND"):
        return _operator(argv, stdin, stdout, stderr)
    if not environ.get("CNI_COMMAND"):
        stderr.write(USAGE.format(about=ABOUT.format(version=__version__), versions=", ".join(SUPPORTED_VERSIONS)))
        return 0

    data = b""
    read_error: OSError | None = None
    try:
        # one byte more than the limit: config.decode refuses what is larger
        data = stdin.read(MAX_STDIN + 1)
    except OSError as exc:
        read_error = exc
    if read_error is None and len(data) <= MAX_STDIN and environ.get("CNI_COMMAND") == "VERSION":
        # Runtimes ask every plugin of every conflist they load: json is all this needs.
        info = _version_info(data)
        if info is not None:
            stdout.write(info)
            return 0

    from .errors import CniError, ErrorCode
    from .ports import Ports

    call = _Call(data)
    ports = ports or Ports()
    watch = None
    if b"logFile" in data or b"\\u" in data:  # possibly a logFile (escapes: decode to know)
        from .calllog import CallLog

        watch = CallLog(ports.hook)
        ports = ports.with_hook(watch.hook)
    notes: list[str] = []
    rc = 1
    try:
        if read_error is not None:
            raise CniError(f"cannot read the network configuration from stdin: {read_error}", code=ErrorCode.IO_FAILURE)
        out = run_cni(environ, call, stderr, ports, notes)
        rc = 0
    except CniError as err:
        out = _dump(err.to_json(call.error_version())) + "\n"
        stderr.write(f"cni-sysctl: error {int(err.code)}: {err.msg}\n")
    except Exception as exc:  # noqa: BLE001 - the one place anything unexpected is mapped
        import traceback

        traceback.print_exc(file=stderr)
        internal = CniError(
            f"internal error: {type(exc).__name__}: {exc}",
            "an unexpected failure in cni-sysctl (please report it); run the plugin by hand to see its traceback",
        )
        out = _dump(internal.to_json(call.error_version())) + "\n"
    stdout.write(out)
    if watch is not None and call.obj is not None and "logFile" in call.obj:
        watch.to_file(call.obj, environ, rc, out, notes, stderr)
    return rc


def _operator(argv: list[str], stdin: BinaryIO | None, stdout: TextIO, stderr: TextIO) -> int:
    sub = argv[0]
    if sub in ("-h", "--help", "help"):
        stdout.write(USAGE.format(about=ABOUT.format(version=__version__), versions=", ".join(SUPPORTED_VERSIONS)))
        return 0
    if sub == "--version":
        stdout.write(f"cni-sysctl {__version__} (CNI {', '.join(SUPPORTED_VERSIONS)})\n")
        return 0
    if sub == "install":
        from . import install

        return install.main(argv[1:], stdout, stderr)
    if sub == "daemon":
        from . import daemon

        return daemon.main(argv[1:], stdout, stderr)
    if sub == "explain":
        from . import explain

        return explain.main(argv[1:], stdin, stdout, stderr)
    if sub == "policy":
        from . import explain

        return explain.policy_main(argv[1:], stdout, stderr)
    stderr.write(f"cni-sysctl: unknown command {sub!r}; run 'cni-sysctl --help'\n")
    return 2
