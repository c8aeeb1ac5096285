"""The CNI commands: orchestrate the pipeline, return data. No printing, no exit codes.

request/config -> keys -> policy -> plan -> (netns: procsys, linkstate, link) -> result.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .config import Config
    from .plan import Plan
    from .request import Request
    from .result import Expected

    Log = Callable[[str], None]

# Each command imports what it uses when it runs: DEL and VERSION, run for every container
# teardown and every config load, must not pay for the ADD machinery.


def _plan(req: Request, config: Config) -> Plan:
    from . import result
    from .plan import build_plan

    prev = config.prev_result
    if prev is not None:
        result.validate(prev)
    ifnames = result.container_ifnames(prev, req.ifname)
    return build_plan(config, ifnames)


def cmd_add(req: Request, config: Config, log: Log) -> dict[str, object]:
    """Validate everything, then write inside the netns; returns prevResult unchanged."""
    from . import result
    from .netns import NetnsEntered

    assert config.prev_result is not None  # parse_config(need_prev_result=True)
    plan = _plan(req, config)
    if config.requested:
        from . import policy

        policy.enforce(config)
    if plan.writes:
        expected = result.expected_state(config.prev_result, plan.ifnames)
        with NetnsEntered(req.netns):
            _apply(plan, expected, log)
    return result.convert(config.prev_result, config.cni_version)


def _apply(plan: Plan, expected: dict[str, Expected], log: Log) -> None:
    from . import linkstate, procsys
    from .errors import CniError, RollbackError

    arrived_down = [i for i in plan.ifnames if not linkstate.is_up(i)]
    resolved = procsys.resolve(plan.writes)
    # A link that arrived down is written while down and then brought up; the Bounce records
    # its state, so a failure returns it to down.
    bounce_ifnames = plan.bounce_ifnames + [i for i in arrived_down if i not in plan.bounce_ifnames]
    journal = procsys.Journal()
    bounce = None
    try:
        if bounce_ifnames:
            from .link import Bounce  # netlink (pyroute2's message classes): only for a bounce

            bounce = Bounce(bounce_ifnames, expected)
            bounce.down()
        for note in procsys.apply(resolved, journal):
            log(note)
        if bounce is not None:
            bounce.up()
    except BaseException as exc:
        problems: list[str] = []
        try:
            for note in journal.rollback():
                log(note)
        except RollbackError as err:
            problems.append(err.msg)
        if bounce is not None:
            try:
                bounce.restore()
            except CniError as err:
                problems.append(err.msg)
        if problems:
            first = exc.msg if isinstance(exc, CniError) else repr(exc)
            raise RollbackError(f"{first}; rollback failed too: {'; '.join(problems)}") from exc
        raise


def cmd_check(req: Request, config: Config, log: Log) -> None:
    from . import linkstate, procsys
    from .errors import CheckMismatchError, LinkNotFoundError
    from .netns import NetnsEntered

    plan = _plan(req, config)
    with NetnsEntered(req.netns):
        gone: list[str] = []
        for ifname in plan.ifnames:
            try:
                linkstate.is_up(ifname)
            except LinkNotFoundError:
                gone.append(ifname)
        if gone:
            raise CheckMismatchError(
                f"interface {', '.join(gone)} missing from the container netns",
                "the attachment's interface was deleted or renamed after ADD",
            )
        wrong = procsys.mismatches(plan.writes)
    if wrong:
        raise CheckMismatchError("sysctl differs from the configuration: " + "; ".join(wrong))


def cmd_del(req: Request, cni_version: str, log: Log) -> None:
    """Nothing to undo: per-interface values go with the interface and netns-wide ones with the
    netns, so DEL keeps no state, never enters (or creates) CNI_NETNS and always succeeds.

    It takes only the config's version, not the parsed config: a conflist edited into an
    invalid one must not make existing containers impossible to tear down."""


def cmd_status(config: Config, log: Log) -> None:
    """Ready when the policy file, if any, is trusted, readable and valid."""
    from . import policy
    from .errors import CniError, NotAvailableError

    try:
        policy.for_config(config)
    except CniError as err:
        raise NotAvailableError(err.msg, err.details) from None


def cmd_gc(config: Config, log: Log) -> None:
    """The plugin keeps no state, so there is nothing to collect."""
