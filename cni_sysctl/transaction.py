"""Apply a plan inside the container netns as one transaction: all of it, or none of it.

    recover  an earlier ADD of this attachment that was killed: put back what its record says
    resolve  every path, its old value, the values it may change besides (procsys)
    snapshot the links the plan may change: addresses, routes, neighbours, up or down
    record   all of that on disk, before the first change (inflight)
    down     the links the plan bounces
    write    each value, in declared order
    up       the bounced links, with what the down flushed put back
    ready    wait until the links of values the kernel resets at readiness are ready
    write    those values
    verify   every value, and the links against their snapshot and prevResult
             -> remove the record
    rollback (after a failure, see below)

If anything fails after the first change, every value goes back (companions included), then
every link back to its snapshot; the error is reported as it happened when that worked, as
105 (with the record kept for the next ADD or DEL to retry) when it did not. The hook of
ports.Ports is called before each step with its name (STEPS): tests inject faults there.
"""

from __future__ import annotations

from . import inflight, procsys
from .errors import CniError, LinkError, RollbackError, WriteRefusedError
from .linkstate import is_up, wait_ready
from .netns import identity

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .bounce import Links
    from .plan import Plan
    from .ports import Ports
    from .result import Expected

    Log = Callable[[str], None]

STEPS = ("recover", "resolve", "snapshot", "record", "down", "write", "up", "ready", "verify", "rollback")
READY_TIMEOUT = 5.0  # seconds: linkwatch reports a veth ready within ~1 s of an earlier event


class Attachment:
    """Which attachment an ADD serves: the key of its in-flight record."""

    __slots__ = ("container_id", "network", "ifname", "netns")

    def __init__(self, container_id: str, network: str, ifname: str, netns: str) -> None:
        self.container_id = container_id
        self.network = network
        self.ifname = ifname
        self.netns = netns

    def record_path(self, ports: Ports) -> str:
        return inflight.path_for(ports.inflight_dir, self.container_id, self.ifname)


def _links(ports: Ports, ifnames: list[str] | None, expected: dict[str, Expected]) -> Links:
    """Snapshot `ifnames` (None: every link of the netns)."""
    import _socket

    from . import rtnlmsg, snapshot
    from .bounce import Links
    from .rtnl import Rtnl

    if ifnames is None:
        wanted = [(name, index) for index, name in _socket.if_nameindex()]
    else:
        wanted = []
        for name in ifnames:
            try:
                wanted.append((name, _socket.if_nametoindex(name)))
            except OSError:
                from .errors import LinkNotFoundError

                raise LinkNotFoundError(f"interface {name} not found in the container netns") from None
    classes = rtnlmsg.load()
    try:
        nl = Rtnl(classes, ports.rtnl_socket)
    except OSError as exc:
        from .rtnl import why

        raise LinkError("cannot open a netlink socket in the container netns", why(exc)) from None
    try:
        snaps = snapshot.take(nl, [(name, index, is_up(name)) for name, index in wanted])
        missing: list[str] = []
        for link in snaps:
            if link.ifname in expected:
                have = {addr.key: addr for addr in link.addrs}
                found = snapshot.missing_expected(link.ifname, expected[link.ifname], have, link.routes)
                missing += [p for p in found if "missing" in p]
        return Links(nl, snaps, expected, missing)
    except nl.errors as exc:
        nl.close()
        from .rtnl import why

        raise LinkError("cannot read the addresses and routes of the container netns", why(exc)) from None
    except BaseException:
        nl.close()
        raise


def add(
    plan_for: Callable[[list[str]], Plan],
    ifnames: list[str],
    expected: dict[str, Expected],
    attachment: Attachment,
    ports: Ports,
    log: Log,
    netns_wide: bool = False,
) -> Plan:
    """Apply the plan `plan_for(down)` makes, `down` being the container links found down.
    Runs inside the container netns; returns the plan applied. `netns_wide`: the plan may change
    every link of the netns (Plan.snapshot_all), so it runs alone in the netns (and so does the
    repair of a killed ADD's record); other ADDs of the netns run side by side."""
    record_path = attachment.record_path(ports)
    with inflight.Lock(record_path):
        exclusive = netns_wide or inflight.exists(record_path)
        with inflight.netns_lock(ports.inflight_dir, netns_id(), exclusive):
            return _add(plan_for, ifnames, expected, record_path, attachment, ports, log)


def _add(
    plan_for: Callable[[list[str]], Plan],
    ifnames: list[str],
    expected: dict[str, Expected],
    record_path: str,
    attachment: Attachment,
    ports: Ports,
    log: Log,
) -> Plan:
    hook = ports.hook
    hook("recover", record_path)
    recover(record_path, ports, log)
    down = [ifname for ifname in ifnames if not is_up(ifname)]  # LinkNotFoundError: gone
    plan = plan_for(down)
    hook("resolve", plan)
    resolved = procsys.resolve(plan.writes)
    links: Links | None = None
    if plan.needs_links:
        hook("snapshot", plan)
        links = _links(ports, None if plan.snapshot_all else plan.snapshot_ifnames, expected)
    try:
        hook("record", record_path)
        _save(record_path, attachment, resolved, links, log)
        journal = procsys.Journal()
        try:
            _forward(plan, resolved, journal, links, hook, log)
        except BaseException as exc:
            hook("rollback", exc)
            _rollback(exc, journal, links, record_path, log)
            raise
        inflight.remove(record_path)
    finally:
        if links is not None:
            links.nl.close()
    return plan


def _forward(
    plan: Plan,
    resolved: list[procsys.Resolved],
    journal: procsys.Journal,
    links: Links | None,
    hook: Callable[[str, object], None],
    log: Log,
) -> None:
    if plan.bounce_ifnames:
        assert links is not None
        hook("down", plan.bounce_ifnames)
        links.down(plan.bounce_ifnames)
    procsys.apply([r for r in resolved if not r.write.after_ready], journal, hook, log)
    if plan.bounce_ifnames:
        assert links is not None
        hook("up", plan.bounce_ifnames)
        links.up()
    later = [r for r in resolved if r.write.after_ready]
    if later:
        waiting = list(dict.fromkeys(str(r.write.device) for r in later))
        hook("ready", waiting)
        not_ready = wait_ready([i for i in waiting if is_up(i)], READY_TIMEOUT)
        if not_ready:
            names = ", ".join(r.write.name for r in later)
            raise LinkError(
                f"{', '.join(not_ready)} did not become ready (no carrier) within {READY_TIMEOUT:.0f} s",
                f"the kernel resets {names} when the link becomes ready, so it can only be written "
                "after that; check the other end of the link",
            )
        procsys.apply(later, journal, hook, log)
    hook("verify", plan)
    wrong = procsys.mismatches(plan.final())
    if wrong:
        raise WriteRefusedError(
            "the kernel did not keep: " + "; ".join(wrong),
            "every write of this ADD was rolled back; a later write, or the link coming up, changed it",
        )
    if links is not None and not plan.bounce_ifnames:
        problems = links.verify_expected()
        if problems:
            raise LinkError("after the writes: " + "; ".join(problems), _side_effect_hint(plan))


def _side_effect_hint(plan: Plan) -> str:
    from . import params

    names = [w.name for w in plan.writes if params.side_effect(w.parts)]
    if not names:
        return ""
    return f"{', '.join(names)} change(s) the addresses and routes of the link; every write was rolled back"


def _rollback(exc: BaseException, journal: procsys.Journal, links: Links | None, record_path: str, log: Log) -> None:
    """Put everything back; raise RollbackError (105) if that fails, keeping the record."""
    problems = _undo(journal.values(), links, log)
    journal.done.clear()
    if problems:
        first = exc.msg if isinstance(exc, CniError) else repr(exc)
        raise RollbackError(
            f"{first}; rollback failed too: {'; '.join(problems)}",
            "the container netns is not as it was found; the next ADD or DEL of this attachment "
            f"tries again ({record_path})",
        ) from exc
    inflight.remove(record_path)


def _undo(values: list[procsys.Value], links: Links | None, log: Log) -> list[str]:
    """Values back, then links back; once more if that left anything (a value can only be
    restored once a link is, and the other way round). What is still wrong."""
    problems: list[str] = []
    for _ in range(2):
        problems = []
        try:
            procsys.restore(values, log)
        except RollbackError as err:
            problems.append(err.msg)
        if links is not None:
            problems += links.restore()
        if not problems:
            break
    return problems


# --- the in-flight record ------------------------------------------------------------------


def _save(path: str, attachment: Attachment, resolved: list[procsys.Resolved], links: Links | None, log: Log) -> None:
    values: list[procsys.Value] = []
    for item in reversed(resolved):  # the order a rollback restores them in
        values.append(item.value)
        values += item.companions
    record: dict[str, Any] = {
        "container_id": attachment.container_id,
        "network": attachment.network,
        "ifname": attachment.ifname,
        "netns": attachment.netns,
        "netns_id": netns_id(),
        "values": [v.to_json() for v in values],
        "links": None if links is None else [link.to_json() for link in links.snapshots.values()],
    }
    try:
        inflight.save(path, record)
    except OSError as exc:
        # Not fatal: the ADD is still all or nothing; only a kill in the middle of it could not
        # be repaired by the next call.
        log(f"warning: cannot write the in-flight record {path}: {exc.strerror}")


def netns_id() -> list[int | None]:
    """Which netns this is: its inode, and its cookie (inode numbers of dead namespaces are
    reused, so a record of a deleted netns could otherwise match a new one)."""
    from .netns import cookie

    return [*identity("/proc/thread-self/ns/net"), cookie()]


def recover(path: str, ports: Ports, log: Log) -> None:
    """If an earlier ADD of this attachment left a record, put the current netns back as it
    says and remove it. Raises RollbackError (105) if that fails (the record stays)."""
    record = inflight.load(path)
    if record is None:
        return
    if record.get("netns_id") != netns_id():
        log(f"discarding in-flight record {path}: it describes another network namespace")
        inflight.remove(path)
        return
    log(f"an earlier ADD of this attachment was interrupted: restoring the netns from {path}")
    try:
        values = [
            procsys.Value(tuple(str(p) for p in parts), procsys.path_of(tuple(str(p) for p in parts)), old)
            for parts, old in record["values"]
        ]
        links = None
        if record.get("links"):
            links = _recorded_links(record["links"], ports)
    except (KeyError, TypeError, ValueError, CniError) as exc:
        log(f"discarding unreadable in-flight record {path}: {exc}")
        inflight.remove(path)
        return
    try:
        problems = _undo(values, links, log)
    finally:
        if links is not None:
            links.nl.close()
    if problems:
        raise RollbackError(
            "an earlier ADD of this attachment was interrupted and what it changed cannot be put back: "
            + "; ".join(problems),
            f"the record stays at {path}; delete the attachment (DEL) and add it again",
        )
    inflight.remove(path)


def _recorded_links(stored: list[dict[str, Any]], ports: Ports) -> Links:
    from . import rtnlmsg
    from .bounce import Links
    from .rtnl import Rtnl
    from .snapshot import LinkSnapshot

    classes = rtnlmsg.load()
    snaps = [LinkSnapshot.from_json(classes, obj) for obj in stored]
    return Links(Rtnl(classes, ports.rtnl_socket), snaps)
