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


class Lock:
    """`with Lock(record_path):` holds the attachment's lock: one call at a time changes an
    attachment (a runtime that killed a call and retries it, or a daemon whose shim was killed
    while its worker goes on, must not run two at once). The lock file stays beside the record
    (DEL and GC remove it); without a writable directory there is no lock, as there is no
    record."""

    TIMEOUT = 30.0  # seconds to wait for another call of the attachment to end

    def __init__(self, record: str) -> None:
        self.path = record[: -len(".json")] + ".lock" if record.endswith(".json") else record + ".lock"
        self.fd = -1

    def __enter__(self) -> Lock:
        import fcntl
        import time

        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError:
            return self  # no directory for records: nothing to protect either
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = -1
                    from .errors import TryAgainError

                    raise TryAgainError(
                        "another call for this attachment is still running",
                        f"waited {self.TIMEOUT:.0f} s for {self.path}; try again later",
                    ) from None
                time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def remove(self) -> None:
        """Remove the lock file (held: DEL, at the end of the attachment)."""
        remove(self.path)
