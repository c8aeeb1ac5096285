"""Read the administrator's policy file the way a security boundary must: trust it only when root
alone can have written it, read it without blocking and with a size cap, and turn its YAML into
plain data without ever expanding an alias.

What makes a file trusted (README, "Security model"):

* it is a regular file (a symlink, FIFO, device or directory is refused before any read), owned
  by root, not writable by group or others;
* its directory is owned by root and not writable by group or others; every directory above it
  is owned by root and not writable by group or others unless sticky (``/tmp``); a symbolic
  link on the way is root's own.

The YAML is composed into nodes (PyYAML, the libyaml C parser when available) and converted
here, node by node: an alias (a node reached twice), a repeated mapping key, an explicit tag,
a timestamp or a float is an error naming its line. PyYAML is imported only when a file is read.
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import CniError, ConfigError, ErrorCode

MAX_BYTES = 1 << 20  # 1 MiB: a policy is a few hundred bytes
MAX_DEPTH = 16  # a policy nests three levels deep
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TAG = "tag:yaml.org,2002:"


class PolicyFileError(ConfigError):
    """The policy file is untrusted, unreadable or invalid (CNI code 7; STATUS reports 50)."""


class YamlMap(dict):  # type: ignore[type-arg]
    """A YAML mapping with string keys, remembering the line of each key (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}


class YamlSeq(list):  # type: ignore[type-arg]
    """A YAML sequence, remembering the line of each item (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


def _untrusted(path: str, why: str, fix: str) -> PolicyFileError:
    return PolicyFileError(
        f"policy file {path} is not trusted: {why}",
        f"a policy file must be a regular file owned by root and writable only by root, in a directory likewise; {fix}",
    )


def _mode(st: os.stat_result) -> str:
    return f"mode {stat.S_IMODE(st.st_mode):04o}"


def _writable_by_others(st: os.stat_result) -> str:
    who = [w for bit, w in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others")) if st.st_mode & bit]
    return " and ".join(who)


def _prefixes(directory: str) -> list[str]:
    """'/a/b' -> ['/', '/a', '/a/b']."""
    out = ["/"]
    current = ""
    for part in directory.split("/"):
        if part:
            current += "/" + part
            out.append(current)
    return out


def _check_directories(path: str) -> None:
    """The file's directory and every directory above it, both as written and as resolved."""
    written = os.path.dirname(path)
    resolved = os.path.realpath(written)
    for chain, follow in ((_prefixes(written), False), (_prefixes(resolved), True)):
        parent = chain[-1]
        for directory in chain:
            try:
                st = os.stat(directory) if follow else os.lstat(directory)
            except OSError as exc:
                raise _untrusted(path, f"cannot inspect {directory}: {exc.strerror}", "check the path") from None
            if stat.S_ISLNK(st.st_mode):
                if st.st_uid != 0:
                    raise _untrusted(
                        path,
                        f"{directory} is a symbolic link owned by uid {st.st_uid}",
                        "name the real directory, or make the link root's",
                    )
                continue
            if st.st_uid != 0:
                raise _untrusted(path, f"directory {directory} is owned by uid {st.st_uid}", f"chown root {directory}")
            sticky_above = directory != parent and st.st_mode & stat.S_ISVTX
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_above:
                raise _untrusted(
                    path,
                    f"directory {directory} is writable by {_writable_by_others(st)} ({_mode(st)})",
                    f"chmod go-w {directory}, or keep the policy in a directory only root can write",
                )


def read(path: str) -> bytes | None:
    """The bytes of the policy file at `path`, or None when there is no file there.

    Raises PolicyFileError (code 7) when the file cannot be trusted or is too large, and a
    CniError with code 5 when reading it fails.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _untrusted(path, "it is a symbolic link", "name the file itself, not a link to it") from None
        raise PolicyFileError(
            f"policy file {path} cannot be opened: {exc.strerror}", "check the path and its permissions"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = {
                stat.S_IFIFO: "a FIFO",
                stat.S_IFCHR: "a character device",
                stat.S_IFBLK: "a block device",
                stat.S_IFDIR: "a directory",
                stat.S_IFSOCK: "a socket",
            }.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise _untrusted(path, f"it is {kind}, not a regular file", "write the policy to a regular file")
        if st.st_uid != 0:
            raise _untrusted(path, f"it is owned by uid {st.st_uid}", f"chown root {path}")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _untrusted(path, f"it is writable by {_writable_by_others(st)} ({_mode(st)})", f"chmod go-w {path}")
        _check_directories(path)
        if st.st_size > MAX_BYTES:
            raise PolicyFileError(f"policy file {path} is larger than {MAX_BYTES} bytes ({st.st_size})")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:
            try:
                chunk = os.read(fd, MAX_BYTES + 1 - size)
            except OSError as exc:
                raise CniError(
                    f"policy file {path} cannot be read: {exc.strerror}", code=ErrorCode.IO_FAILURE
                ) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_BYTES:
            raise PolicyFileError(f"policy file {path} is larger than {MAX_BYTES} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def shown(value: object) -> str:
    """A piece of the file in a message, cut short: a misnamed policy path (a root-owned file
    that is not a policy) must not have its contents copied into errors."""
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "..." + text[-1]


def _invalid(path: str, line: int | None, why: str) -> PolicyFileError:
    where = f"{path}:{line}" if line is not None else path
    return PolicyFileError(
        f"policy file {where} is invalid: {why}", "see README.md, 'Policy for per-attachment sysctls'"
    )


def parse_yaml(data: bytes, path: str) -> object:
    """YAML text -> plain data (YamlMap, YamlSeq, str, int, bool, None), refusing aliases,
    repeated keys, tags, floats and timestamps. An empty document is an empty mapping."""
    try:
        import yaml
    except ImportError as exc:
        from .errors import InstallationError

        raise InstallationError(
            f"cannot read the policy file {path}: PyYAML is not importable ({exc})",
            "install PyYAML for cni-sysctl's interpreter (pip install cni-sysctl), then rerun `cni-sysctl install`",
        ) from None

    loader_class = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        # First the event stream, to name the line of an alias (a node reached twice is caught
        # again below); then the node tree. Neither ever expands an alias.
        for event in yaml.parse(text, Loader=loader_class):
            if isinstance(event, yaml.AliasEvent):
                raise _invalid(
                    path,
                    event.start_mark.line + 1 if event.start_mark is not None else None,
                    f"YAML aliases (*{event.anchor}) are not allowed in a policy; write the value out",
                )
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        why = " ".join(str(x) for x in (exc.context, exc.problem) if x) or "error"
        raise _invalid(path, line, f"YAML: {why}") from None
    except yaml.YAMLError as exc:
        raise _invalid(path, None, str(exc).replace("\n", " ")) from None
    except RecursionError:
        raise _invalid(path, None, "nested too deeply") from None
    if node is None:
        return YamlMap(1)
    return _convert(node, path, set(), 0)


def _convert(node: object, path: str, seen: set[int], depth: int) -> object:
    import yaml

    assert isinstance(node, yaml.Node)
    line = node.start_mark.line + 1
    if id(node) in seen:
        raise _invalid(path, line, "YAML aliases (*name) are not allowed in a policy; write the value out")
    seen.add(id(node))
    if depth > MAX_DEPTH:
        raise _invalid(path, line, "nested too deeply")
    tag = node.tag
    if isinstance(node, yaml.MappingNode):
        if tag != _TAG + "map":
            raise _invalid(path, line, f"unsupported YAML tag {shown(tag)}")
        mapping = YamlMap(line)
        for key_node, value_node in node.value:
            key = _convert(key_node, path, seen, depth + 1)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise _invalid(path, key_line, f"mapping keys must be strings, not {shown(key)}")
            if key in mapping:
                raise _invalid(path, key_line, f"key {shown(key)} given twice (first at line {mapping.key_lines[key]})")
            mapping[key] = _convert(value_node, path, seen, depth + 1)
            mapping.key_lines[key] = key_line
        return mapping
    if isinstance(node, yaml.SequenceNode):
        if tag != _TAG + "seq":
            raise _invalid(path, line, f"unsupported YAML tag {shown(tag)}")
        seq = YamlSeq(line)
        for item in node.value:
            seq.append(_convert(item, path, seen, depth + 1))
            seq.item_lines.append(item.start_mark.line + 1)
        return seq
    assert isinstance(node, yaml.ScalarNode)
    text = node.value
    if tag == _TAG + "str":
        return text
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "bool":
        return text.lower() in ("yes", "true", "on", "y")
    if tag == _TAG + "int":
        body = text.lstrip("+-")
        if body.isdigit() and (body == "0" or not body.startswith("0")):
            return int(text)
        if body[:2] in ("0x", "0X"):
            try:
                return int(text, 16)
            except ValueError:
                pass
        raise _invalid(path, line, f"integer {shown(text)}: write integers in decimal (or quote the value)")
    if tag == _TAG + "merge":
        raise _invalid(path, line, "YAML merge keys (<<) are not allowed in a policy")
    if tag == _TAG + "float":
        raise _invalid(path, line, f"{shown(text)} is a fraction; sysctl values are integers or strings (quote it)")
    raise _invalid(path, line, f"unsupported YAML type {shown(tag)} for {shown(text)}; quote the value")
