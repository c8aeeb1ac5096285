"""The record of an ADD in flight: what the attachment's netns held before the ADD changed it.

A runtime that times out kills its plugin (SIGKILL), possibly while a link is down or its
addresses are half restored. So before the first change an ADD writes down the old value of
every sysctl it may change and the snapshot of every link it may change, in a small file keyed
by container id and interface name; it removes the file when it ends, committed or rolled back.
The next ADD or DEL of that attachment that finds the file puts the netns back as the record
says before anything else (transaction.recover); CHECK reports it; GC removes records of
attachments that no longer exist.

Files live in a root-only directory under /run (tmpfs: gone at reboot, with the namespaces
they describe), written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_DIR = "/run/cni-sysctl/inflight"
VERSION = 1


def path_for(directory: str, container_id: str, ifname: str) -> str:
    """The record of one attachment. Container ids and interface names never hold ':' or '/'
    (request.valid_id, request.check_ifname), so the name is unambiguous."""
    name = f"{container_id}:{ifname}.json"
    if len(name.encode()) > 255:
        import hashlib

        name = hashlib.sha256(f"{container_id}\0{ifname}".encode()).hexdigest() + ".json"
    return os.path.join(directory, name)


def save(path: str, record: dict[str, Any]) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, json.dumps({"version": VERSION, **record}, separators=(",", ":")).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load(path: str) -> dict[str, Any] | None:
    """The record at `path`; None when there is none. A record that cannot be read or parsed is
    returned as {} (it describes nothing that can be restored)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = os.read(fd, 16 << 20)
    except OSError:
        return {}
    finally:
        os.close(fd)
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return obj if isinstance(obj, dict) and obj.get("version") == VERSION else {}


def remove(path: str) -> None:
    try:  # noqa: SIM105 - contextlib would cost DEL an import
        os.unlink(path)
    except FileNotFoundError:
        pass


def exists(path: str) -> bool:
    return os.path.lexists(path)


def records(directory: str) -> list[str]:
    """Paths of every record in `directory`."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, n) for n in sorted(names) if n.endswith(".json")]
