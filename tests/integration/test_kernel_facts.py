"""cni_sysctl.params against the running kernel: every table of kernel facts, checked in both
directions where it can be. An entry the kernel does not bear out fails, and so does a
behaviour of this kernel that no entry covers: a propagating write, a rounded value, a value
reset at link readiness, a write that adds or removes addresses or routes, a key whose value is
the host's.

Every write happens in throwaway namespaces and is put back; keys of params.HOST_WIDE are
never written (they would change the host).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator

import pytest

from cni_sysctl import linkstate, params
from cni_sysctl.netns import NetnsEntered
from tests import netlab
from tests.netlab import Box, dump

pytestmark = pytest.mark.root

Parts = tuple[str, ...]


def tree() -> dict[Parts, str]:
    """Every readable /proc/sys/net value of the current netns, by components."""
    out: dict[Parts, str] = {}
    for root, _, files in os.walk("/proc/sys/net"):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path) as f:
                    out[tuple(path[len("/proc/sys/") :].split("/"))] = f.read().strip()
            except OSError:
                pass
    return out


def write(parts: Parts, value: str) -> bool:
    """Write `value`; False when the kernel refuses it."""
    fd = os.open("/proc/sys/" + "/".join(parts), os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def writable_numbers(values: dict[Parts, str], devices: tuple[str, ...]) -> Iterator[tuple[Parts, int]]:
    """Writable integer settings: per-device ones of `devices`, and every netns-wide one."""
    for parts, value in sorted(values.items()):
        if parts in params.HOST_WIDE or parts[-1] in netlab.VOLATILE_SYSCTLS:
            continue
        if len(parts) == 5 and parts[2] in ("conf", "neigh") and parts[3] not in devices:
            continue
        if not os.access("/proc/sys/" + "/".join(parts), os.W_OK):
            continue
        try:
            yield parts, int(value)
        except ValueError:
            continue


def other(number: int) -> str:
    return str(1 - number if number in (0, 1) else number + 1)


def test_companions_cover_every_value_a_write_changes(box: Box) -> None:
    """Write each setting (devices all, default, eth0, lo, and netns-wide) and look at the
    whole tree: whatever else changed must be one of params.companions()."""
    uncovered: list[str] = []
    checked = 0
    with NetnsEntered(box.path):
        devices = ["lo", "eth0"]
        base = tree()
        for parts, number in writable_numbers(base, ("all", "default", "eth0", "lo")):
            before = tree()
            if not write(parts, other(number)):
                continue
            after = tree()
            write(parts, before[parts])
            allowed = set(params.companions(parts, devices)) | {parts}
            changed = {p for p in after if after[p] != before.get(p)}
            uncovered += [f"{'.'.join(parts)} also changed {'.'.join(p)}" for p in sorted(changed - allowed)]
            # and put back: the companions first-hand, as a rollback would
            for p in sorted(changed - {parts}):
                write(p, before[p])
            checked += 1
        left = {p for p, v in tree().items() if base.get(p) != v}
    assert checked > 300, f"only {checked} settings could be written"
    assert not uncovered, "writes that change values params.companions() does not name:\n" + "\n".join(uncovered)
    assert not left, f"the probe did not put back {left}"


def test_rounded_values_are_what_the_tables_say(box: Box) -> None:
    """Values the kernel stores differently are exactly those params.rounding() names, and
    canonical_values() predicts what it stores."""
    surprises: list[str] = []
    with NetnsEntered(box.path):
        for parts, number in writable_numbers(tree(), ("eth0", "default")):
            original = str(number)
            for candidate in ("30001", "1001", "7", other(number)):
                if not write(parts, candidate):
                    continue
                with open("/proc/sys/" + "/".join(parts)) as f:
                    got = f.read().strip()
                write(parts, original)
                if got == candidate:
                    continue
                if params.rounding(parts) is None:
                    surprises.append(f"{'.'.join(parts)}: wrote {candidate}, reads {got}, not in the tables")
                elif got not in params.canonical_values(parts, candidate):
                    surprises.append(f"{'.'.join(parts)}: wrote {candidate}, reads {got}, not predicted")
    assert not surprises, "\n".join(surprises)
    for family, table, param in params.ROUNDED_PER_DEVICE:
        assert os.path.exists(f"/proc/sys/net/{family}/{table}/default/{param}"), f"{family}.{table}.{param} unknown"


def test_only_the_listed_values_are_reset_when_the_link_becomes_ready(box: Box) -> None:
    """Every per-device setting of eth0 written while the link is down (all at once: one
    readiness wait), then the link brought up: what reads back differently once it is ready
    is exactly params.RESET_WHEN_READY."""
    skip = {"disable_ipv6", "forwarding", "force_forwarding", "accept_ra", "addr_gen_mode"}  # change the link itself
    reset: set[tuple[str, str, str]] = set()
    with NetnsEntered(box.path):
        linkstate.admin_state("eth0", False)
        written: dict[Parts, str] = {}
        for parts, number in writable_numbers(tree(), ("eth0",)):
            if len(parts) != 5 or parts[4] in skip:
                continue
            value = "1400" if parts[4] == "mtu" else other(number)
            if write(parts, value):
                written[parts] = value
        before = tree()
        linkstate.admin_state("eth0", True)
        assert linkstate.wait_ready(["eth0"], 5.0) == []
        after = tree()
    for parts in written:
        if after.get(parts) != before.get(parts):
            reset.add((parts[1], parts[2], parts[4]))
    assert len(written) > 100
    assert reset == set(params.RESET_WHEN_READY)


def _links_state(ns: str) -> dict[str, list[str]]:
    state = dump(ns, sysctls=False)
    return {k: v for k, v in state.items() if k != "ip -d link"}


def test_writes_that_change_addresses_or_routes_are_listed(make_netns: Callable[[str], str]) -> None:
    """Each conf setting of eth0 and of all, written on an up link with IPv4 and IPv6
    addresses and routes: the ones that change an address or a route are params.SIDE_EFFECTS."""
    box = Box(make_netns)
    base = _links_state(box.ns)
    changing: set[tuple[str, str]] = set()
    with NetnsEntered(box.path):
        candidates = [(p, n) for p, n in writable_numbers(tree(), ("eth0", "all")) if len(p) == 5 and p[2] == "conf"]
    for parts, number in candidates:
        with NetnsEntered(box.path):
            ok = write(parts, other(number))
        if not ok:
            continue
        changed = _links_state(box.ns) != base
        with NetnsEntered(box.path):
            write(parts, str(number))
        if changed:
            changing.add((parts[1], parts[4]))
            # what the write took away does not all come back with the value: a fresh box
            box = Box(make_netns)
            base = _links_state(box.ns)
    listed = set(params.SIDE_EFFECTS)
    assert changing <= listed, f"writes that change addresses or routes but are not listed: {changing - listed}"
    assert {("ipv6", "disable_ipv6"), ("ipv6", "forwarding")} <= changing


def test_no_writable_netns_key_is_the_hosts_but_those_listed(make_netns: Callable[[str], str]) -> None:
    """A netns-wide key written in one throwaway netns must not change in another: else it is
    the host's value (params.HOST_WIDE lists those, and the plugin refuses them)."""
    a, b = make_netns("hwa"), make_netns("hwb")
    shared: list[str] = []
    with NetnsEntered(netlab.netns_path(b)):
        seen = tree()
    with NetnsEntered(netlab.netns_path(a)):
        keys = [(p, n) for p, n in writable_numbers(tree(), ()) if not (len(p) == 5 and p[2] in ("conf", "neigh"))]
    for parts, number in keys:
        with NetnsEntered(netlab.netns_path(a)):
            if not write(parts, other(number)):
                continue
        with NetnsEntered(netlab.netns_path(b)), open("/proc/sys/" + "/".join(parts)) as f:
            if f.read().strip() != seen.get(parts):
                shared.append(".".join(parts))
        with NetnsEntered(netlab.netns_path(a)):
            write(parts, str(number))
    assert len(keys) > 100
    assert not shared, f"netns-wide keys whose value is shared by every netns: {shared}"


def test_host_wide_keys_are_refused_before_anything_is_read() -> None:
    from cni_sysctl.errors import KeyRejectedError
    from cni_sysctl.keys import parse_key

    for parts in params.HOST_WIDE:
        with pytest.raises(KeyRejectedError, match="host-wide switch"):
            parse_key(".".join(parts))


def test_einval_is_what_the_kernel_says_for_the_refused_values_the_tests_use(box: Box) -> None:
    with NetnsEntered(box.path):
        fd = os.open("/proc/sys/net/ipv6/conf/eth0/mtu", os.O_WRONLY)
        try:
            with pytest.raises(OSError) as info:
                os.write(fd, b"100")
        finally:
            os.close(fd)
    assert info.value.errno == errno.EINVAL
