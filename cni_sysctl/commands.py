"""The CNI commands: orchestrate the pipeline, return data. No printing, no exit codes.

request/config -> keys -> policy -> plan -> transaction (netns, procsys, bounce) -> result.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .config import Config
    from .ports import Ports
    from .request import Request
    from .result import Expected

    Log = Callable[[str], None]

# Each command imports what it uses when it runs: DEL and VERSION, run for every container
# teardown and every config load, must not pay for the ADD machinery.


def _targets(req: Request, config: Config) -> tuple[list[str], dict[str, Expected]]:
    """The container-side interfaces, and what prevResult says each holds (validated first:
    nothing is changed for a prevResult this plugin could not check)."""
    from . import result

    prev = config.prev_result
    if prev is not None:
        result.validate(prev)
    ifnames = result.container_ifnames(prev, req.ifname)
    return ifnames, result.expected_state(prev, ifnames)


def _policy_applies(config: Config) -> bool:
    """Whether the policy has anything to judge. Without per-attachment values, without a
    policy file named by the conflist and without one at the default path, every key is the
    conflist's and trusted (policy.default_policy): the policy modules are not even loaded."""
    import os

    if not config.requested:
        return False
    return bool(config.untrusted) or config.policy_explicit or os.path.lexists(config.policy)


def cmd_add(req: Request, config: Config, log: Log, ports: Ports) -> dict[str, object]:
    """Validate everything, then write inside the netns; returns prevResult unchanged."""
    from . import result
    from .netns import NetnsEntered
    from .plan import build_plan

    assert config.prev_result is not None  # parse_config(need_prev_result=True)
    ifnames, expected = _targets(req, config)
    plan = build_plan(config, ifnames)
    if _policy_applies(config):
        from . import policy

        policy.enforce(config)
    if plan.writes:
        from . import transaction

        attachment = transaction.Attachment(req.container_id, config.name, req.ifname, req.netns)
        with NetnsEntered(req.netns, ports.netns):
            transaction.add(
                lambda down: build_plan(config, ifnames, down),
                ifnames,
                expected,
                attachment,
                ports,
                log,
                netns_wide=plan.snapshot_all,
            )
    return result.convert(config.prev_result, config.cni_version)


def cmd_check(req: Request, config: Config, log: Log, ports: Ports) -> None:
    """Every configured value, every container interface (present and up), and prevResult's
    addresses and routes; an ADD of this attachment that never finished is a mismatch too."""
    from . import inflight, linkstate, procsys
    from .errors import CheckMismatchError, LinkNotFoundError
    from .netns import NetnsEntered
    from .plan import build_plan

    ifnames, expected = _targets(req, config)
    plan = build_plan(config, ifnames)
    record = inflight.path_for(ports.inflight_dir, req.container_id, req.ifname)
    if inflight.exists(record):
        raise CheckMismatchError(
            "an ADD of this attachment was interrupted and has not been repaired",
            f"its record is {record}; the next ADD or DEL of the attachment puts the netns back",
        )
    problems: list[str] = []
    with NetnsEntered(req.netns, ports.netns):
        present = []
        for ifname in plan.ifnames:
            try:
                if not linkstate.is_up(ifname):
                    problems.append(f"interface {ifname} is down")
                present.append(ifname)
            except LinkNotFoundError:
                problems.append(f"interface {ifname} missing from the container netns")
        problems += procsys.mismatches([w for w in plan.final() if w.ifname is None or w.ifname in present])
        wanted = {i: e for i, e in expected.items() if i in present and (e.addresses or e.routes)}
        if wanted:
            problems += _expected_problems(wanted, ports)
    if problems:
        raise CheckMismatchError("the attachment is not as configured: " + "; ".join(problems))


def _expected_problems(expected: dict[str, Expected], ports: Ports) -> list[str]:
    import _socket

    from . import rtnlmsg, snapshot
    from .errors import LinkError
    from .rtnl import Rtnl, why

    try:
        nl = Rtnl(rtnlmsg.load(), ports.rtnl_socket)
    except OSError as exc:
        raise LinkError("cannot open a netlink socket in the container netns", why(exc)) from None
    try:
        index_of = {ifname: _socket.if_nametoindex(ifname) for ifname in expected}
        return snapshot.expected_problems(nl, expected, index_of)
    except nl.errors as exc:
        raise LinkError("cannot read the addresses and routes of the container netns", why(exc)) from None
    finally:
        nl.close()


def cmd_del(req: Request, cni_version: str, log: Log, ports: Ports) -> None:
    """Nothing to undo: per-interface values go with the interface and netns-wide ones with the
    netns. DEL keeps no state of its own; it only repairs an ADD of this attachment that was
    killed midway (its in-flight record), and always succeeds.

    It takes only the config's version, not the parsed config: a conflist edited into an
    invalid one must not make existing containers impossible to tear down."""
    from . import inflight

    record = inflight.path_for(ports.inflight_dir, req.container_id, req.ifname)
    lock = inflight.Lock(record)
    if not inflight.exists(record):
        # The lock file of a call killed before its record, unless a call still holds it (an
        # ADD the runtime gave up on: it removes the file itself when it ends).
        lock.discard()
        return
    from . import transaction
    from .errors import CniError
    from .netns import NetnsEntered

    try:
        with lock:
            try:
                if req.netns:
                    with (
                        NetnsEntered(req.netns, ports.netns),
                        inflight.netns_lock(ports.inflight_dir, transaction.netns_id(), exclusive=True),
                    ):
                        transaction.recover(record, ports, log)
            finally:
                inflight.remove(record)  # the netns is going away: the record has served
    except CniError as err:
        log(f"DEL: could not put back what an interrupted ADD changed ({err.msg}); the netns is going away")


def cmd_status(config: Config, log: Log) -> None:
    """Ready when pyroute2 is usable and the policy file, if any, is trusted, readable and valid."""
    from . import policy, rtnlmsg
    from .errors import CniError, NotAvailableError

    try:
        rtnlmsg.load()
    except CniError as err:
        raise NotAvailableError(err.msg, err.details) from None
    try:
        policy.for_config(config)
    except CniError as err:
        raise NotAvailableError(err.msg, err.details) from None


def cmd_gc(config: Config, log: Log, ports: Ports) -> None:
    """Remove the in-flight records of this network's attachments that the runtime no longer
    knows (cni.dev/valid-attachments), and lock files left by calls killed before they could
    remove them (never one a running call holds); the plugin keeps no other state."""
    import contextlib

    from . import inflight
    from .errors import CniError

    if config.valid_attachments is None:
        return
    valid = set(config.valid_attachments)
    for path in inflight.records(ports.inflight_dir):
        record = inflight.load(path)
        if record is None:
            continue
        if record and record.get("network") != config.name:
            continue
        if (record.get("container_id"), record.get("ifname")) not in valid:
            if inflight.Lock(path).discard():
                log(f"GC: removed the in-flight record {path}")
            else:
                log(f"GC: kept the in-flight record {path}: a call of its attachment is running")
    # Lock files without a record: left by a call killed between the two. A lock file names
    # its attachment but not its network; removing one of another network's live attachment
    # is harmless (the next call makes it again), and a held one is never removed.
    for path in inflight.orphan_locks(ports.inflight_dir):
        attachment = inflight.attachment_of(path)
        if attachment is not None and attachment not in valid:
            inflight.Lock(path[: -len(".lock")] + ".json").discard()
    for path in inflight.netns_locks(ports.inflight_dir):  # left by a kill; never one held
        with contextlib.suppress(CniError), inflight.FileLock(path, timeout=0):
            pass
