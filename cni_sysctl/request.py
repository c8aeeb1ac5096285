"""The CNI_* environment, read through one table.

Each row names a variable, the commands that require it and a validator. Every missing or
invalid variable of a request is reported together, in one error (CNI code 4).
"""

from __future__ import annotations

from .errors import EnvironmentVariableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Literal

    Command = Literal["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"]

COMMANDS: tuple[Command, ...] = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ALNUM | frozenset("_.-")


def valid_id(value: str) -> bool:
    """The libcni rule for container IDs and network names: ^[A-Za-z0-9][A-Za-z0-9_.-]*$"""
    return bool(value) and value[0] in _ALNUM and _ID_CHARS.issuperset(value)


IFNAMSIZ = 16


def text_problem(value: str) -> str | None:
    """Why `value` cannot be passed on as UTF-8 text (None when it can): JSON's "\ud800"
    escapes and non-UTF-8 bytes in the environment (decoded with surrogateescape) both give
    lone surrogates, which no file name, value or JSON output of ours may carry."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return "not valid UTF-8 text (a lone surrogate, or bytes that are not UTF-8)"
    return None


def check_ifname(value: str) -> str | None:
    """Why `value` cannot be an interface name (None when it can): the kernel's rules (the one
    place they are written down; linkstate and result use this too)."""
    if value == "":
        return "empty"
    problem = text_problem(value)
    if problem is not None:
        return problem
    if len(value.encode()) >= IFNAMSIZ:
        return "longer than 15 bytes (IFNAMSIZ)"
    if value in (".", ".."):
        return "'.' and '..' are not interface names"
    if any(c in "/:\x00" or c.isspace() for c in value):
        return "contains '/', ':', NUL or whitespace"
    return None


def _container_id(value: str) -> str | None:
    problem = text_problem(value)
    if problem is not None:
        return problem
    if valid_id(value):
        return None
    return "must start with a letter or digit and hold only letters, digits, '_', '.', '-'"


def _netns(value: str) -> str | None:
    problem = text_problem(value)
    if problem is not None:
        return problem
    if not value.startswith("/"):
        return "must be an absolute path (e.g. /var/run/netns/NAME or /proc/PID/ns/net)"
    return None


def _cni_args(value: str) -> str | None:
    problem = text_problem(value)
    if problem is not None:
        return problem
    for pair in value.split(";"):
        if pair and "=" not in pair:
            return f"{pair!r} is not KEY=VALUE"
    return None


def _command(value: str) -> str | None:
    if value not in COMMANDS:
        return f"unknown command {value!r}; expected one of {', '.join(COMMANDS)}"
    return None


_ATTACHMENT = frozenset(("ADD", "DEL", "CHECK"))
_NONE: frozenset[str] = frozenset()

# variable, commands that require it, commands that read it, commands that ignore an invalid
# value (as if it were absent), validator.
# A variable is validated only for the commands that read it: libcni fills the others with
# placeholders (CNI_NETNS=dummy for VERSION), and those must not fail the request. DEL reads
# CNI_NETNS only to repair an interrupted ADD, and must succeed whatever it says.
_TABLE: tuple[tuple[str, frozenset[str], frozenset[str], frozenset[str], Callable[[str], str | None] | None], ...] = (
    ("CNI_COMMAND", frozenset(COMMANDS), frozenset(COMMANDS), _NONE, _command),
    ("CNI_CONTAINERID", _ATTACHMENT, _ATTACHMENT, _NONE, _container_id),
    ("CNI_NETNS", frozenset(("ADD", "CHECK")), _ATTACHMENT, frozenset(("DEL",)), _netns),
    ("CNI_IFNAME", _ATTACHMENT, _ATTACHMENT, _NONE, check_ifname),
    ("CNI_ARGS", _NONE, _ATTACHMENT, _NONE, _cni_args),
    ("CNI_PATH", frozenset(("ADD", "DEL", "CHECK", "GC")), frozenset(("ADD", "DEL", "CHECK", "GC")), _NONE, None),
)


MAX_ENVIRONMENT = 64 << 10  # bytes of CNI_* variables (the daemon's wire has the same limit)


def check_environment_size(environ: Mapping[str, str]) -> None:
    """Refuse CNI_* variables larger than the daemon's wire carries, in direct mode too, so that
    both modes answer alike. Each counts as NAME=VALUE plus one byte (the C environment)."""
    import os

    total, largest, largest_size = 0, "", -1
    for name, value in environ.items():
        if not name.startswith("CNI_"):
            continue
        size = len(os.fsencode(name)) + 1 + len(os.fsencode(value)) + 1
        total += size
        if size > largest_size:
            largest, largest_size = name, size
    if total > MAX_ENVIRONMENT:
        raise EnvironmentVariableError(
            f"CNI_* environment variables larger than {MAX_ENVIRONMENT >> 10} KiB",
            f"largest: {largest} ({largest_size} bytes); at most {MAX_ENVIRONMENT} bytes in all, each variable "
            "counted as NAME=VALUE plus one",
        )


class Request:
    """The validated CNI_* variables of one invocation."""

    __slots__ = ("command", "container_id", "netns", "ifname", "args", "path")

    def __init__(
        self,
        command: Command,
        container_id: str,
        netns: str,
        ifname: str,
        args: dict[str, str],
        path: str,
    ) -> None:
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = args
        self.path = path


def read_request(environ: Mapping[str, str]) -> Request:
    command = environ.get("CNI_COMMAND", "")
    missing: list[str] = []
    invalid: list[str] = []
    values: dict[str, str] = {}
    for name, required_by, read_by, lenient, validate in _TABLE:
        value = environ.get(name, "")
        if name != "CNI_COMMAND" and command not in read_by:
            value = ""
        if value != "" and validate is not None:
            problem = validate(value)
            if problem is not None:
                if command in lenient:
                    value = ""
                else:
                    invalid.append(f"{name}: {problem}")
        values[name] = value
        if value == "" and (command in required_by or name == "CNI_COMMAND"):
            missing.append(name)
    if missing or invalid:
        parts = []
        if missing:
            parts.append(f"required environment variables missing: {', '.join(missing)}")
        if invalid:
            parts.append("invalid environment variables: " + "; ".join(invalid))
        names = missing + [i.split(":", 1)[0] for i in invalid]
        raise EnvironmentVariableError("; ".join(parts), f"variables: {', '.join(names)}")
    args: dict[str, str] = {}
    for pair in values["CNI_ARGS"].split(";"):
        if pair:
            k, _, v = pair.partition("=")
            args[k] = v
    return Request(
        command=command,  # type: ignore[arg-type]  # _command validated it
        container_id=values["CNI_CONTAINERID"],
        netns=values["CNI_NETNS"],
        ifname=values["CNI_IFNAME"],
        args=args,
        path=values["CNI_PATH"],
    )
