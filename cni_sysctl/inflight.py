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

import os

from .jsonio import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
        os.write(fd, dumps({"version": VERSION, **record}).encode())
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
        obj = loads(data)
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


def orphan_locks(directory: str) -> list[str]:
    """Paths of the lock files in `directory` without a record beside them."""
    try:
        names = set(os.listdir(directory))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in sorted(names)
            if n.endswith(".lock") and n[: -len(".lock")] + ".json" not in names]  # fmt: skip


def attachment_of(path: str) -> tuple[str, str] | None:
    """(container id, interface name) of a record or lock file path; None for a hashed name."""
    name = os.path.basename(path).rsplit(".", 1)[0]
    container_id, sep, ifname = name.partition(":")
    return (container_id, ifname) if sep and container_id and ifname else None


class FileLock:
    """A flock on `path`, exclusive or shared, waited for up to `timeout` seconds.

    The file is only ever removed by a holder that has it exclusively (see `release`); a call
    that waited on a file removed meanwhile sees that the path no longer names what it locked
    and locks the file there now. Without a writable directory there is no lock, as there is
    no record."""

    TIMEOUT = 30.0  # seconds to wait for another call to end

    def __init__(self, path: str, timeout: float = TIMEOUT, shared: bool = False) -> None:
        self.path = path
        self.timeout = timeout
        self.shared = shared
        self.fd = -1

    def __enter__(self) -> FileLock:
        import fcntl
        import time

        deadline = time.monotonic() + self.timeout
        mode = (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        while True:
            try:
                os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            except OSError:
                return self  # no directory for records: nothing to protect either
            while True:
                try:
                    fcntl.flock(fd, mode)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        os.close(fd)
                        from .errors import TryAgainError

                        raise TryAgainError(
                            "another call for this attachment or its netns is still running",
                            f"waited {self.timeout:.0f} s for {self.path}; try again later",
                        ) from None
                    time.sleep(0.01)
            if self._names(fd):
                self.fd = fd
                return self
            os.close(fd)  # its holder removed it while this call waited: lock the file there now

    def _names(self, fd: int) -> bool:
        """Whether the lock path still names the file `fd` locked."""
        try:
            at_path = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        held = os.fstat(fd)
        return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)

    def __exit__(self, *exc: object) -> None:
        self.release(remove_file=True)

    def release(self, remove_file: bool) -> None:
        """Release the lock; first remove the file if `remove_file` and no one else holds it
        (a shared holder tries to take it exclusively, without waiting)."""
        if self.fd < 0:
            return
        if remove_file:
            import fcntl

            try:
                if self.shared:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                remove(self.path)
            except BlockingIOError:
                pass  # another holder: the last one removes it
        os.close(self.fd)
        self.fd = -1


class Lock(FileLock):
    """`with Lock(record_path):` holds the attachment's lock: one call at a time changes an
    attachment (a runtime that killed a call and retries it, or a daemon whose shim was killed
    while its worker goes on, must not run two at once). Its file, beside the record, is
    removed when the call ends without a record left (so a lock file outlives its call only
    beside a record, or after a kill between the two)."""

    def __init__(self, record: str, timeout: float = FileLock.TIMEOUT) -> None:
        path = record[: -len(".json")] + ".lock" if record.endswith(".json") else record + ".lock"
        super().__init__(path, timeout)
        self.record = record

    def __enter__(self) -> Lock:
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release(remove_file=not os.path.lexists(self.record))

    def discard(self) -> bool:
        """Remove the record and the lock file unless a call holds the lock (GC, and DEL of an
        attachment without a record). Whether nothing is left."""
        if not (exists(self.path) or exists(self.record)):
            return True
        from .errors import TryAgainError

        self.timeout = 0.0
        try:
            with self:
                remove(self.record)
        except TryAgainError:
            return False
        return True


def netns_lock(directory: str, netns_id: list[int | None], exclusive: bool) -> FileLock:
    """The lock of one netns (`netns_id`: transaction.netns_id, taken inside it). An ADD holds
    it shared; one that may change every link of the netns (and restores every link if it
    fails), or that repairs a killed ADD's record, holds it exclusively, so it never puts back
    what a concurrent ADD of another attachment of the netns committed meanwhile. Its file is
    removed by the last holder."""
    name = "netns-" + "-".join(str(part) for part in netns_id) + ".lock"
    return FileLock(os.path.join(directory, name), shared=not exclusive)


def netns_locks(directory: str) -> list[str]:
    """Paths of every netns lock file in `directory`."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, n) for n in sorted(names) if n.startswith("netns-") and n.endswith(".lock")]
