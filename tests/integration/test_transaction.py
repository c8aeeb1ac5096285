"""The ADD is a transaction: whatever fails after the first change, the container netns is
returned to the state it was found in (sysctl values, link state, addresses, routes, static
neighbours) before the error is reported (CONTRACT.md, "Link-up ordering" and "Rejected").

The plugin runs in this process, through `cli.main()`, with faults injected through its public
ports (tests/faults.py): a hook called at every step of the ADD, which can raise there, and a
netlink socket that refuses chosen requests. Each test compares a full dump of the netns taken
by `ip` and `cat` in a separate process, never through the plugin's own code, before and after.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cni_sysctl import linkstate, rtnl
from tests import netlab
from tests.faults import Faults, attr, einval
from tests.netlab import Box, Outcome, call_plugin, cni_env, dump, plugin_config, run, settle

pytestmark = pytest.mark.root

# Declared order; the third is a bounce key, so linkBounce "auto" bounces eth0 around the writes.
KEYS = [
    "net.ipv4.tcp_keepalive_time=600",
    "ipv4.conf.rp_filter=1",
    "ipv6.conf.addr_gen_mode=1",
    "ipv6.conf.accept_ra=0",
    "net.core.somaxconn=512",
]
NAMES = [
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.conf.eth0.rp_filter",
    "net.ipv6.conf.eth0.addr_gen_mode",
    "net.ipv6.conf.eth0.accept_ra",
    "net.core.somaxconn",
]
REFUSED = ("ipv6.conf.mtu=100", "net.ipv6.conf.eth0.mtu")  # below 1280: this kernel says EINVAL


@pytest.fixture
def box(make_netns: Callable[[str], str]) -> Box:
    return Box(make_netns, rich=True)


@pytest.fixture
def before(box: Box) -> dict[str, list[str]]:
    state = dump(box.ns)
    values = dict(line.partition("=")[::2] for line in state["sysctls"])
    for key, name in zip(KEYS, NAMES, strict=True):
        # every write must change something, or a missing rollback would go unseen
        assert values[name.replace(".", "/")] != key.partition("=")[2], f"{name} already holds the value written"
    assert any(" fe80:" in line for line in state["ip -d addr"]), "eth0 has its kernel link-local"
    return state


def add(box: Box, keys: list[str], tmp_path: Path, faults: Faults | None = None, bounce: str = "auto") -> Outcome:
    config = plugin_config("1.0.0", keys, box.prev_result(), linkBounce=bounce)
    ports = (faults or Faults()).ports(str(tmp_path / "inflight"))
    return call_plugin(cni_env("ADD", box.path), config, ports)


def assert_restored(box: Box, before: dict[str, list[str]]) -> None:
    """The netns is as it was found: restored IPv6 addresses usable at once, then, once the
    kernel's own link-local is out of DAD, a dump identical to `before`; the gateways answer."""
    # only the kernel's link-local may still be in DAD: restored addresses are usable at once
    early = [a for a in netlab.tentative(box.ns) if not a.startswith("fe80:")]
    assert not early, f"restored addresses left tentative: {early}"
    settle(box.ns)
    after = dump(box.ns)
    assert after == before, "the netns differs from before the ADD:\n" + netlab.diff(before, after)
    assert netlab.ping(box.ns, box.gw4)
    assert netlab.ping(box.ns, box.gw6)


def assert_error(out: Outcome, code: int, *words: str) -> None:
    assert out.rc == 1, out
    assert out.code == code, f"expected code {code}: {out}"
    for word in words:
        assert word in out.msg, f"{word!r} not in the message: {out.msg!r}"


def restored_order(out: Outcome) -> list[str]:
    """The values the rollback wrote back, in order (the plugin logs each on stderr)."""
    return [line.split("restored ", 1)[1].split(" = ")[0] for line in out.stderr.splitlines() if "restored " in line]


# --- the harness works: no fault, the ADD succeeds --------------------------------------------


def test_without_a_fault_the_add_succeeds(box: Box, before: dict[str, list[str]], tmp_path: Path) -> None:
    faults = Faults()
    out = add(box, KEYS, tmp_path, faults)
    assert out.rc == 0, out
    assert [s for s in faults.steps if s in ("down", "up", "rollback")] == ["down", "up"]
    for name, key in zip(NAMES, KEYS, strict=True):
        assert netlab.read_sysctl(box.ns, name.replace(".", "/")) == key.partition("=")[2]
    assert not netlab.link_locals(box.ns), "addr_gen_mode 1 acted"
    assert netlab.addresses(box.ns) == set(box.addrs)
    assert not list((tmp_path / "inflight").iterdir()), "the in-flight record is removed"
    assert netlab.ping(box.ns, box.gw4)
    assert netlab.ping(box.ns, box.gw6)


# --- 1. a write refused at each position, the bounce in progress ------------------------------


@pytest.mark.parametrize("k", range(len(KEYS)), ids=[n.rsplit(".", 1)[1] for n in NAMES])
def test_refused_write_at_each_position(box: Box, before: dict[str, list[str]], tmp_path: Path, k: int) -> None:
    link_up: list[bool] = []

    def on_step(step: str, detail: object) -> None:
        if step == "write" and len(link_up) == 0 and faults.steps.count("write") == k + 1:
            link_up.append(linkstate.is_up("eth0"))  # this thread is in the container netns

    faults = Faults(raise_at=("write", k, einval()), on_step=on_step)
    out = add(box, KEYS, tmp_path, faults)
    assert_error(out, 102, NAMES[k], "refused")
    assert link_up == [False], "the write failed while the bounce held eth0 down"
    assert restored_order(out) == list(reversed(NAMES[:k])), "rolled back last write first"
    assert_restored(box, before)
    assert not list((tmp_path / "inflight").iterdir())


def test_value_the_kernel_refuses_last(box: Box, before: dict[str, list[str]], tmp_path: Path) -> None:
    """The same, with a real EINVAL from the kernel instead of an injected one."""
    out = add(box, [*KEYS, REFUSED[0]], tmp_path)
    assert_error(out, 102, REFUSED[1], "refused")
    assert_restored(box, before)


def _source6(ns: str, box: Box) -> str:
    """The source address the kernel picks for an IPv6 destination off-link through the default
    route, for which RFC 6724's rules tie between the two global addresses."""
    words = run("ip", "-6", "route", "get", "2001:db8:99::1", ns=ns).stdout.split()
    return words[words.index("src") + 1]


def test_ipv6_address_order_survives_a_rollback(box: Box, before: dict[str, list[str]], tmp_path: Path) -> None:
    source = _source6(box.ns, box)
    assert_error(add(box, KEYS, tmp_path, Faults(raise_at=("write", 3, einval()))), 102, NAMES[3])
    settle(box.ns)
    assert _source6(box.ns, box) == source, "the source address of off-link IPv6 traffic changed"
    assert dump(box.ns)["ip -d addr"] == before["ip -d addr"]


# --- 2, 3. a route or an address that up() cannot put back -------------------------------------


def _route(msg: Any) -> tuple[int, str | None, int]:
    return msg["family"], attr(msg, "RTA_DST"), attr(msg, "RTA_TABLE") or msg["table"]


ROUTES = {
    "default-v4": ((2, None, 254), "route default via {gw4} on eth0"),
    "table100-v6": ((10, "2001:db8:1::", 100), "route 2001:db8:1::/64 via {gw6} table 100"),
    "metric-mtu-v4": ((2, "198.51.100.0", 254), "route 198.51.100.0/24 via {gw4} on eth0"),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_route_restore_fails_in_up(box: Box, before: dict[str, list[str]], tmp_path: Path, route: str) -> None:
    target, described = ROUTES[route]
    faults = Faults(lambda t, f, msg: errno.ENETUNREACH if t == rtnl.RTM_NEWROUTE and _route(msg) == target else None)
    out = add(box, KEYS, tmp_path, faults)
    assert faults.fired, "the fault was never injected"
    assert_error(out, 103, "cannot restore", described.format(gw4=box.gw4, gw6=box.gw6))
    assert faults.steps[-1] == "rollback"
    assert_restored(box, before)


@pytest.mark.parametrize("which", ["add", "flags"])
def test_address_restore_fails_in_up(box: Box, before: dict[str, list[str]], tmp_path: Path, which: str) -> None:
    # the plain IPv6 address is added back without DAD, then given its own flags back
    local = box.addrs[1].split("/")[0]
    wanted = rtnl.NLM_F_EXCL if which == "add" else rtnl.NLM_F_REPLACE

    def rule(msg_type: int, flags: int, msg: Any) -> int | None:
        address = attr(msg, "IFA_LOCAL") or attr(msg, "IFA_ADDRESS") if msg is not None else None
        return errno.EPERM if msg_type == rtnl.RTM_NEWADDR and address == local and flags & wanted else None

    faults = Faults(rule)
    out = add(box, KEYS, tmp_path, faults)
    assert faults.fired, "the fault was never injected"
    assert_error(out, 103, "cannot restore", f"address {box.addrs[1]} on eth0")
    assert_restored(box, before)


# --- 4. an unexpected exception ----------------------------------------------------------------


def test_unexpected_exception_in_the_write_loop(box: Box, before: dict[str, list[str]], tmp_path: Path) -> None:
    out = add(box, KEYS, tmp_path, Faults(raise_at=("write", 3, RuntimeError("injected in write #3"))))
    assert_error(out, 999, "RuntimeError", "injected in write #3")
    assert "Traceback" in out.stderr
    assert "Traceback" not in out.stdout
    assert_restored(box, before)


def test_unexpected_exception_in_up(box: Box, before: dict[str, list[str]], tmp_path: Path) -> None:
    """Raised at the first route up() puts back: the link is up, the IPv6 addresses are back,
    the routes through eth0 are not."""
    faults = Faults(lambda t, f, msg: RuntimeError("injected in up") if t == rtnl.RTM_NEWROUTE else None)
    out = add(box, KEYS, tmp_path, faults)
    assert len(faults.fired) == 1, "the fault fired once, and nothing was retried after it"
    assert_error(out, 999, "RuntimeError", "injected in up")
    assert_restored(box, before)


def test_unexpected_exception_in_verification(box: Box, before: dict[str, list[str]], tmp_path: Path) -> None:
    """Raised once up() has put everything back: restoring must undo what the new sysctls did
    at link-up (addr_gen_mode 1 made no link-local) as well."""
    out = add(box, KEYS, tmp_path, Faults(raise_at=("verify", 0, RuntimeError("injected in verify"))))
    assert_error(out, 999, "RuntimeError", "injected in verify")
    assert_restored(box, before)


def test_interrupt_in_the_middle_is_rolled_back_too(box: Box, before: dict[str, list[str]], tmp_path: Path) -> None:
    """A KeyboardInterrupt (Ctrl-C, or SIGTERM turned into one) is not an Exception: the
    rollback still runs, and the interrupt goes on up."""
    with pytest.raises(KeyboardInterrupt):
        add(box, KEYS, tmp_path, Faults(raise_at=("write", 2, KeyboardInterrupt())))
    assert_restored(box, before)


# --- 5. the set-down failing; dumps that keep being interrupted --------------------------------


@pytest.mark.parametrize("mode", ["refused", "applied"])
def test_set_down_fails(box: Box, before: dict[str, list[str]], tmp_path: Path, mode: str) -> None:
    """The down step fails: refused outright, or after the kernel set the link down (the down
    flushed the IPv6 addresses and every route through eth0)."""

    def on_step(step: str, detail: object) -> None:
        if step == "down":
            if mode == "applied":
                linkstate.admin_state("eth0", False)
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    out = add(box, KEYS, tmp_path, Faults(on_step=on_step))
    assert_error(out, 999, "OSError")
    assert_restored(box, before)


@pytest.mark.parametrize("step", ["snapshot", "up"])
def test_dumps_keep_being_interrupted(box: Box, before: dict[str, list[str]], tmp_path: Path, step: str) -> None:
    """At the snapshot: nothing is changed yet. In up(): eth0 is up again and nothing is put
    back yet; the rollback then reads undisturbed."""
    faults = Faults(at=(step,))
    faults.interrupt_dumps = True
    out = add(box, KEYS, tmp_path, faults)
    assert len(faults.fired) >= rtnl.DUMP_TRIES, "every retry was interrupted"
    assert_error(out, 11, "addresses and routes kept changing")
    assert_restored(box, before)


# --- 6. linkBounce never: earlier values back, the link never touched --------------------------


def carrier_changes(ns: str) -> int:
    """How many times eth0's carrier went down or up: an admin down and up adds 2."""
    return int(run("cat", "/sys/class/net/eth0/carrier_changes", ns=ns).stdout)


def test_never_bounce_refused_last_value(box: Box, before: dict[str, list[str]], tmp_path: Path) -> None:
    carrier = carrier_changes(box.ns)
    faults = Faults()
    out = add(box, [*KEYS, REFUSED[0]], tmp_path, faults, bounce="never")
    assert_error(out, 102, REFUSED[1], "refused")
    assert "down" not in faults.steps, "no bounce"
    # addr_gen_mode written to an up link adds a link-local at once (params.SIDE_EFFECTS): the
    # links are snapshot, so that the rollback can take it away again
    assert "snapshot" in faults.steps
    # no DAD to wait for: nothing may be tentative, and the dump is identical at once
    assert not netlab.tentative(box.ns)
    after = dump(box.ns)
    assert after == before, netlab.diff(before, after)
    assert carrier_changes(box.ns) == carrier, "eth0's carrier never went down"
    assert netlab.ping(box.ns, box.gw4)
