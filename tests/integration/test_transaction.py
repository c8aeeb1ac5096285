"""The ADD is a transaction: whatever fails after the first change, the container netns is
returned to the state it was found in (sysctl values, link state, addresses, routes, static
neighbours) before the error is reported (CONTRACT.md, "Link-up ordering" and "Rejected").

The plugin runs in this process, through `cli.main()` with a CNI environment, so that faults
can be injected into its internals with monkeypatch: a refused write at every position, a
route or an address that cannot be put back, an unexpected exception, a set-down that fails, a
netlink dump that keeps being interrupted. main() enters the netns itself (setns on this thread)
and returns to ours. Each test compares a full dump of the netns taken by `ip` and `cat` in
a separate process (`ip netns exec`), never through the plugin's own code, before and after.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from io import BytesIO, StringIO
from typing import Any

import pytest

from cni_sysctl import cli, link, linkstate, procsys
from tests.conftest import run, unique

pytestmark = pytest.mark.root

IFNAME = "eth0"
GW4, GW6 = "10.98.0.1", "fd00:98::1"
ADDR4, ADDR6, ADDR6B = "10.98.0.2/24", "fd00:98::2/64", "fd00:98:1::2/64"

# Declared order; the third is a bounce key, so linkBounce "auto" bounces eth0 around the writes.
KEYS = [
    "net.ipv4.tcp_keepalive_time=600",
    "ipv4.conf.rp_filter=1",
    "ipv6.conf.addr_gen_mode=1",
    "ipv6.conf.accept_ra=0",
    "net.core.somaxconn=512",
]
# The concrete key of each entry, as the plugin names it in messages, and its /proc/sys path.
NAMES = [
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.conf.eth0.rp_filter",
    "net.ipv6.conf.eth0.addr_gen_mode",
    "net.ipv6.conf.eth0.accept_ra",
    "net.core.somaxconn",
]
REFUSED = ("ipv6.conf.mtu=100", "net.ipv6.conf.eth0.mtu")  # below 1280: this kernel says EINVAL


def _path(name: str) -> str:
    return name.replace(".", "/")


# --- the sandbox --------------------------------------------------------------------------------


class Sandbox:
    """Container netns `ns` with eth0 (a veth, up) whose peer, in netns `host`, holds the gateways.

    eth0: 10.98.0.2/24; fd00:98::2/64 added nodad (the flag stays); fd00:98:1::2/64 settled the
    way IPAM leaves an address (added nodad, then `change` drops the flag without starting DAD).
    Routes: default via each gateway, a route of each family in table 100, a route of each family
    with metric 50 and mtu 1400; one permanent neighbour.
    """

    def __init__(self, make_netns: Callable[[str], str]) -> None:
        self.host = make_netns("txh")
        self.ns = make_netns("txc")
        peer = unique("txp")
        c, h = self.ns, self.host
        run("ip", "link", "add", IFNAME, "type", "veth", "peer", "name", peer, "netns", h, ns=c)
        # The kernel's DAD of eth0's link-local, shortened from 1-2 s to about 0.2 s (probe
        # interval 200 ms, no random delay before the probe) so that the suite stays short. DAD
        # still happens: addresses still go tentative at link-up, and one that a restore leaves
        # tentative is still seen (assert_restored looks within a few milliseconds). The plugin
        # neither writes nor reads these two.
        run("sh", "-c", f"echo 200 > /proc/sys/net/ipv6/neigh/{IFNAME}/retrans_time_ms"
            f" && echo 0 > /proc/sys/net/ipv6/conf/{IFNAME}/router_solicitation_delay", ns=c)  # fmt: skip
        _batch(h, [f"addr add {GW4}/24 dev {peer}", f"addr add {GW6}/64 dev {peer} nodad", f"link set {peer} up"])
        _batch(
            c,
            [
                f"link set {IFNAME} up",
                f"addr add {ADDR4} dev {IFNAME}",
                f"addr add {ADDR6} dev {IFNAME} nodad",
                f"addr add {ADDR6B} dev {IFNAME} nodad",
                f"addr change {ADDR6B} dev {IFNAME}",
                f"route add default via {GW4}",
                f"route add default via {GW6}",
                f"route add 192.0.2.0/24 via {GW4} table 100",
                f"route add 2001:db8:1::/64 via {GW6} table 100",
                f"route add 198.51.100.0/24 via {GW4} metric 50 mtu 1400",
                f"route add 2001:db8:2::/64 via {GW6} metric 50 mtu 1400",
                f"neigh add 10.98.0.77 lladdr 02:00:00:00:00:77 dev {IFNAME} nud permanent",
            ],
        )
        settle(c)

    @property
    def path(self) -> str:
        return f"/var/run/netns/{self.ns}"

    def prev_result(self) -> dict[str, object]:
        return {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": IFNAME, "sandbox": self.path}],
            "ips": [
                {"interface": 0, "address": ADDR4, "gateway": GW4},
                {"interface": 0, "address": ADDR6, "gateway": GW6},
                {"interface": 0, "address": ADDR6B},
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": GW4},
                {"dst": "::/0", "gw": GW6},
                {"dst": "198.51.100.0/24", "gw": GW4},
                {"dst": "2001:db8:2::/64", "gw": GW6},
            ],
        }


def _batch(ns: str, commands: list[str]) -> None:
    run("ip", "-batch", "-", ns=ns, input="\n".join(commands) + "\n")


def _tentative(ns: str) -> list[str]:
    addrs = json.loads(run("ip", "-j", "addr", "show", "dev", IFNAME, ns=ns).stdout)[0]["addr_info"]
    return [f"{a['local']}/{a['prefixlen']}" for a in addrs if a.get("tentative")]


def settle(ns: str, timeout: float = 8.0) -> None:
    """Wait until eth0 has no tentative address: the kernel's own link-local goes through DAD at
    every link-up (as when the chained plugin first brought the link up), and its local route
    appears only once DAD is done."""
    deadline = time.monotonic() + timeout
    while _tentative(ns):
        if time.monotonic() > deadline:
            raise AssertionError(f"addresses of {IFNAME} still tentative after {timeout}s: {_tentative(ns)}")
        time.sleep(0.05)


@pytest.fixture
def box(make_netns: Callable[[str], str]) -> Sandbox:
    return Sandbox(make_netns)


# --- the dump -------------------------------------------------------------------------------

# What `ip` of iproute2 6.1 does not print: who made an address (IFA_PROTO: 3 is the kernel's
# link-local generation, which the plugin tells from IPAM's by it), its flags in full and its
# prefix route metric. Read with a bare RTM_GETADDR dump, sorted (order: see comparable()).
_ADDR_ATTRS = r"""
import socket, struct
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.bind((0, 0))
s.send(struct.pack("=IHHII", 24, 22, 0x301, 1, 0) + bytes(8))  # RTM_GETADDR, REQUEST|DUMP
out, done = [], False
while not done:
    data, off = s.recv(65536), 0
    while off < len(data):
        ln, typ = struct.unpack_from("=IH", data, off)
        if typ in (2, 3):  # NLMSG_ERROR, NLMSG_DONE
            assert typ == 3 or struct.unpack_from("=i", data, off + 16)[0] == 0
            done = True
            break
        fam, plen, flags, scope, index = struct.unpack_from("=BBBBI", data, off + 16)
        attrs, a = {}, off + 24
        while a < off + ln:
            alen, atype = struct.unpack_from("=HH", data, a)
            attrs[atype] = data[a + 4 : a + alen]
            a += (alen + 3) & ~3
        if fam in (socket.AF_INET, socket.AF_INET6):
            addr = socket.inet_ntop(fam, attrs.get(2) or attrs[1])  # IFA_LOCAL, IFA_ADDRESS
            flags = struct.unpack("=I", attrs[8])[0] if 8 in attrs else flags  # IFA_FLAGS
            metric = struct.unpack("=I", attrs[9])[0] if 9 in attrs else None  # IFA_RT_PRIORITY
            proto = attrs[11][0] if 11 in attrs else None  # IFA_PROTO
            out.append(f"if{index} {addr}/{plen} scope {scope} flags {flags:#x} metric {metric} proto {proto}")
        off += (ln + 3) & ~3
print("\n".join(sorted(out)))
"""

_DUMP = f"""
echo '## ip -d addr show'; ip -d addr show
echo '## address attributes'; {sys.executable} -I -S -c '{_ADDR_ATTRS}'
echo '## ip -d route show table all'; ip -d route show table all
echo '## ip -d -6 route show table all'; ip -d -6 route show table all
echo '## ip -d link show eth0'; ip -d link show eth0
echo '## ip neigh show nud permanent / proxy'; ip neigh show nud permanent; ip neigh show proxy
echo '## sysctls'; for p; do echo "$p = $(cat /proc/sys/$p)"; done
"""


def dump(ns: str, names: list[str]) -> dict[str, list[str]]:
    """Everything an ADD may change in `ns`, section by section, one entry per line of output.

    Nothing is normalised away here: every address is permanent (lifetimes "forever", no
    counters running down), the link's statistics are not asked for (no -s), and callers dump
    only once every address has left DAD (settle(); assert_restored() first checks that no
    restored address is tentative). The one normalisation is comparable()'s, made explicitly.
    """
    out = run("sh", "-c", _DUMP, "sh", *(_path(n) for n in names), ns=ns).stdout
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:], [])
        else:
            current.append(line.rstrip())
    return sections


def comparable(state: dict[str, list[str]]) -> dict[str, list[str]]:
    """`state` with each link's IPv6 addresses in sorted order, everything else as listed.

    The one normalisation, and it is not free: the kernel lists a link's IPv6 addresses of one
    scope newest first, and that order decides the source address when RFC 6724's rules tie
    (ipv6_dev_get_saddr keeps the first best candidate). Restoring IPv6 addresses in snapshot
    order reverses it; test_ipv6_address_order_survives_a_rollback pins that down on its own, so
    that this one difference does not hide every other one in the tests below. IPv4 addresses
    keep their order (it makes the primary address), and a down does not flush them anyway.
    """
    out = dict(state)
    lines: list[str] = []
    blocks: list[list[str]] = []
    for line in [*state["ip -d addr show"], ""]:
        if line.startswith("    inet6 "):
            blocks.append([line])
        elif line.startswith("       ") and blocks:
            blocks[-1].append(line)
        else:
            lines += [x for block in sorted(blocks) for x in block]
            blocks = []
            lines.append(line)
    out["ip -d addr show"] = lines[:-1]
    return out


def carrier_changes(ns: str) -> int:
    """How many times eth0's carrier went down or up (sysfs of the netns, as `ip netns exec`
    mounts it): an admin down and up adds 2."""
    return int(run("cat", f"/sys/class/net/{IFNAME}/carrier_changes", ns=ns).stdout)


def gateway_answers(ns: str) -> None:
    for gw in (GW4, GW6):
        proc = run("busybox", "ping", "-c1", "-w3", gw, ns=ns, check=False)
        assert proc.returncode == 0, f"gateway {gw} does not answer from the container netns: {proc.stdout}"


# --- the plugin, in process -----------------------------------------------------------------------


class Outcome:
    def __init__(self, rc: int, stdout: str, stderr: str) -> None:
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.error: dict[str, Any] = json.loads(stdout) if stdout.strip() else {}

    @property
    def code(self) -> object:
        return self.error.get("code")

    @property
    def msg(self) -> str:
        return str(self.error.get("msg", ""))


def _own_netns() -> tuple[int, int]:
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


def add(box: Sandbox, keys: list[str], bounce: str = "auto") -> Outcome:
    config = {
        "cniVersion": "1.0.0",
        "name": "txn",
        "type": "cni-sysctl",
        "sysctl": keys,
        "linkBounce": bounce,
        "prevResult": box.prev_result(),
    }
    environ = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": unique("ctr"),
        "CNI_IFNAME": IFNAME,
        "CNI_NETNS": box.path,
        "CNI_PATH": "/opt/cni/bin",
    }
    stdout, stderr = StringIO(), StringIO()
    origin = _own_netns()
    rc = cli.main(argv=[], environ=environ, stdin=BytesIO(json.dumps(config).encode()), stdout=stdout, stderr=stderr)
    assert _own_netns() == origin, "the plugin did not return this thread to its own netns"
    return Outcome(rc, stdout.getvalue(), stderr.getvalue())


# --- fault injection ------------------------------------------------------------------------------


class Steps:
    """Which Bounce step is running (innermost of down, up, restore), and the order they ran in.

    up() restores by itself when it fails, and the caller calls restore() again after its own
    rollback: faults aimed at "up" fire only in up's forward work, never while it restores."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stack: list[str] = []
        self.ran: list[str] = []
        for name in ("down", "up", "restore"):
            monkeypatch.setattr(link.Bounce, name, self._wrap(name, getattr(link.Bounce, name)))

    def _wrap(self, name: str, real: Callable[[link.Bounce], None]) -> Callable[[link.Bounce], None]:
        def step(bounce: link.Bounce) -> None:
            self.stack.append(name)
            self.ran.append(name)
            try:
                real(bounce)
            finally:
                self.stack.pop()

        return step

    @property
    def current(self) -> str | None:
        return self.stack[-1] if self.stack else None


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> Steps:
    return Steps(monkeypatch)


class Writes:
    """procsys.write_value, failing the k-th forward write with `exc`; the writes after a failure
    are the rollback's and go through. Records both, and whether eth0 was up at the failure."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, k: int, exc: BaseException) -> None:
        self.k = k
        self.exc = exc
        self.forward: list[tuple[str, str]] = []
        self.rollback: list[tuple[str, str]] = []
        self.failed = False
        self.link_up_at_failure: bool | None = None
        self.real = procsys.write_value
        monkeypatch.setattr(procsys, "write_value", self)

    def __call__(self, path: str, value: str) -> None:
        if self.failed:
            self.rollback.append((path, value))
        elif len(self.forward) == self.k:
            self.failed = True
            self.link_up_at_failure = link.is_up(IFNAME)  # this thread is in the container netns
            raise self.exc
        else:
            self.forward.append((path, value))
        self.real(path, value)


def _msg_attr(msg: Any, name: str) -> Any:
    for slot in msg["attrs"]:
        if slot[0] == name:
            return slot[1]
    return None


def _route_of(msg: Any) -> tuple[int, str | None, int]:
    table = _msg_attr(msg, "RTA_TABLE") or msg["table"]
    return msg["family"], _msg_attr(msg, "RTA_DST"), table


def fail_requests(
    monkeypatch: pytest.MonkeyPatch,
    steps: Steps,
    when: Callable[[Any, int, int], bool],
    make_exc: Callable[[Any], BaseException],
) -> list[str]:
    """_Rtnl.request raising make_exc(rt) for every request of up()'s forward work that `when`
    (msg, msg_type, flags) picks; returns a log of the faults raised."""
    real = link._Rtnl.request
    fired: list[str] = []

    def request(self: link._Rtnl, msg: Any, msg_type: int, flags: int = 0, ok: int = 0) -> None:
        if steps.current == "up" and when(msg, msg_type, flags):
            fired.append(f"{msg_type}:{flags:#x}")
            raise make_exc(self.rt)
        real(self, msg, msg_type, flags, ok)

    monkeypatch.setattr(link._Rtnl, "request", request)
    return fired


# --- the assertions every test makes -------------------------------------------------------


def _diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> str:
    lines = []
    for section in before.keys() | after.keys():
        b, a = before.get(section, []), after.get(section, [])
        if b != a:
            lines.append(f"## {section}")
            lines += [f"- {x}" for x in b if x not in a]
            lines += [f"+ {x}" for x in a if x not in b]
            if sorted(b) == sorted(a):
                lines.append("  (same lines, different order)")
    return "\n".join(lines)


def assert_restored(box: Sandbox, before: dict[str, list[str]], names: list[str]) -> None:
    """The netns is as it was found: restored IPv6 addresses usable at once, then, once the
    kernel's own link-local is out of DAD, a dump identical to `before`; the gateways answer."""
    # Only the kernel's link-local may still be in DAD: the contract says restored addresses are
    # usable at once, so an IPAM address left tentative is a difference, not something to wait for.
    early = [a for a in _tentative(box.ns) if not a.startswith("fe80:")]
    assert not early, f"restored addresses left tentative: {early}"
    settle(box.ns)
    after = comparable(dump(box.ns, names))
    before = comparable(before)
    assert after == before, "the netns differs from before the ADD:\n" + _diff(before, after)
    gateway_answers(box.ns)


def assert_error(out: Outcome, code: int, *words: str) -> None:
    assert out.rc == 1, out.stdout + out.stderr
    assert out.code == code, f"expected code {code}: {out.stdout}\n{out.stderr}"
    for word in words:
        assert word in out.msg, f"{word!r} not in the message: {out.msg!r}"


@pytest.fixture
def before(box: Sandbox) -> dict[str, list[str]]:
    state = dump(box.ns, NAMES)
    values = dict(line.split(" = ") for line in state["sysctls"])
    for key, name in zip(KEYS, NAMES, strict=True):
        # every write must change something, or a missing rollback would go unseen
        assert values[_path(name)] != key.partition("=")[2], f"{name} already holds the value written"
    assert any(" fe80:" in line for line in state["ip -d addr show"]), "eth0 has its kernel link-local"
    return state


# --- the harness works: no fault, the ADD succeeds ------------------------------------------------


def test_without_a_fault_the_add_succeeds(box: Sandbox, before: dict[str, list[str]], steps: Steps) -> None:
    out = add(box, KEYS)
    assert out.rc == 0, out.stdout + out.stderr
    assert steps.ran == ["down", "up"]
    after = dump(box.ns, NAMES)
    assert after["sysctls"] == [f"{_path(n)} = {k.partition('=')[2]}" for n, k in zip(NAMES, KEYS, strict=True)]
    assert not any(" fe80:" in line for line in after["ip -d addr show"])  # addr_gen_mode 1 acted
    gateway_answers(box.ns)


# --- 1. a write refused at each position, the bounce in progress --------------------------------


@pytest.mark.parametrize("k", range(len(KEYS)), ids=[n.rsplit(".", 1)[1] for n in NAMES])
def test_refused_write_at_each_position(
    box: Sandbox, before: dict[str, list[str]], steps: Steps, monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    writes = Writes(monkeypatch, k, OSError(errno.EINVAL, os.strerror(errno.EINVAL)))
    out = add(box, KEYS)
    assert_error(out, 102, NAMES[k], "refused")
    assert writes.link_up_at_failure is False, "the write failed while the bounce held eth0 down"
    assert [p for p, _ in writes.rollback] == [p for p, _ in reversed(writes.forward)]
    assert steps.ran == ["down", "restore"]
    assert_restored(box, before, NAMES)


def test_value_the_kernel_refuses_last(box: Sandbox, before: dict[str, list[str]]) -> None:
    """The same, with a real EINVAL from the kernel instead of an injected one."""
    names = [*NAMES, REFUSED[1]]
    state = dump(box.ns, names)
    out = add(box, [*KEYS, REFUSED[0]])
    assert_error(out, 102, REFUSED[1], "refused")
    assert_restored(box, state, names)


def _source6(ns: str) -> str:
    """The source address the kernel picks for an IPv6 destination off-link through the default
    route, for which RFC 6724's rules tie between fd00:98::2 and fd00:98:1::2."""
    words = run("ip", "-6", "route", "get", "2001:db8:99::1", ns=ns).stdout.split()
    return words[words.index("src") + 1]


def test_ipv6_address_order_survives_a_rollback(
    box: Sandbox, before: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source6(box.ns)
    Writes(monkeypatch, 3, OSError(errno.EINVAL, os.strerror(errno.EINVAL)))
    assert_error(add(box, KEYS), 102, NAMES[3])
    settle(box.ns)
    assert _source6(box.ns) == source, "the source address of off-link IPv6 traffic changed"
    assert dump(box.ns, NAMES)["ip -d addr show"] == before["ip -d addr show"]


# --- 2, 3. a route or an address that up() cannot put back --------------------------------------

ROUTES = {
    "default-v4": ((socket.AF_INET, None, 254), "route default via 10.98.0.1 on eth0"),
    "table100-v6": ((socket.AF_INET6, "2001:db8:1::", 100), "route 2001:db8:1::/64 via fd00:98::1 table 100"),
    "metric-mtu-v4": ((socket.AF_INET, "198.51.100.0", 254), "route 198.51.100.0/24 via 10.98.0.1 on eth0"),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_route_restore_fails_in_up(
    box: Sandbox, before: dict[str, list[str]], steps: Steps, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    target, described = ROUTES[route]
    fired = fail_requests(
        monkeypatch,
        steps,
        lambda msg, msg_type, _: msg_type == link.RTM_NEWROUTE and _route_of(msg) == target,
        lambda rt: rt.NetlinkError(errno.ENETUNREACH, "injected"),
    )
    out = add(box, KEYS)
    assert fired, "the fault was never injected"
    assert_error(out, 103, "cannot restore", described)
    assert steps.ran[:2] == ["down", "up"]
    assert "restore" in steps.ran[2:]
    assert_restored(box, before, NAMES)


ADDRS = {
    # fd00:98::2 keeps its nodad flag: added back in one request
    "add": ("fd00:98::2", link.NLM_F_CREATE | link.NLM_F_EXCL, "address fd00:98::2/64 on eth0"),
    # fd00:98:1::2 is added nodad, so as not to be tentative, then given its own flags back
    "flags": ("fd00:98:1::2", link.NLM_F_REPLACE, "address fd00:98:1::2/64 on eth0"),
}


@pytest.mark.parametrize(
    "which",
    [
        "add",
        "flags",
    ],
)
def test_address_restore_fails_in_up(
    box: Sandbox, before: dict[str, list[str]], steps: Steps, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    local, request_flags, described = ADDRS[which]

    def when(msg: Any, msg_type: int, flags: int) -> bool:
        address = _msg_attr(msg, "IFA_LOCAL") or _msg_attr(msg, "IFA_ADDRESS")  # IPv6: IFA_ADDRESS only
        return msg_type == link.RTM_NEWADDR and address == local and bool(flags & request_flags)

    fired = fail_requests(monkeypatch, steps, when, lambda rt: rt.NetlinkError(errno.EPERM, "injected"))
    out = add(box, KEYS)
    assert fired, "the fault was never injected"
    assert_error(out, 103, "cannot restore", described)
    assert_restored(box, before, NAMES)


# --- 4. an unexpected exception ----------------------------------------------------------------


def test_unexpected_exception_in_the_write_loop(
    box: Sandbox, before: dict[str, list[str]], steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    Writes(monkeypatch, 3, RuntimeError("injected in write #3"))
    out = add(box, KEYS)
    assert_error(out, 999, "RuntimeError", "injected in write #3")
    assert "Traceback" in out.stderr
    assert "Traceback" not in out.stdout
    assert steps.ran == ["down", "restore"]
    assert_restored(box, before, NAMES)


def test_unexpected_exception_in_up(
    box: Sandbox, before: dict[str, list[str]], steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raised at the first route up() puts back: the link is up, the IPv6 addresses are back,
    the routes through eth0 are not."""
    fired = fail_requests(
        monkeypatch,
        steps,
        lambda msg, msg_type, _: msg_type == link.RTM_NEWROUTE,
        lambda rt: RuntimeError("injected in up"),
    )
    out = add(box, KEYS)
    assert len(fired) == 1, "the fault fired once, and nothing was retried after it"
    assert_error(out, 999, "RuntimeError", "injected in up")
    assert_restored(box, before, NAMES)


def test_unexpected_exception_in_up_verification(
    box: Sandbox, before: dict[str, list[str]], steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raised once up() has put everything back: restoring must undo what the new sysctls did
    at link-up (addr_gen_mode 1 made no link-local) as well."""
    real = link.Bounce._verify

    def verify(self: link.Bounce, forward: bool) -> list[str]:
        if forward:
            raise RuntimeError("injected in verify")
        return real(self, forward)

    monkeypatch.setattr(link.Bounce, "_verify", verify)
    out = add(box, KEYS)
    assert_error(out, 999, "RuntimeError", "injected in verify")
    assert_restored(box, before, NAMES)


# --- 5. down() failing midway; dumps that keep being interrupted -------------------------------


@pytest.mark.parametrize("mode", ["refused", "applied"])
def test_set_down_fails(
    box: Sandbox, before: dict[str, list[str]], steps: Steps, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The set-down ioctl fails: refused outright, or after the kernel set the link down (the
    down flushed the IPv6 addresses and every route through eth0)."""
    real = fcntl.ioctl
    fired: list[int] = []

    def ioctl(fd: Any, request: int, arg: Any = 0, *rest: Any) -> Any:
        if request == linkstate.SIOCSIFFLAGS and not fired and steps.current == "down":
            fired.append(request)
            if mode == "applied":
                real(fd, request, arg, *rest)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fd, request, arg, *rest)

    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    out = add(box, KEYS)
    assert fired
    assert_error(out, 103, "cannot set down interface eth0")
    assert steps.ran[0] == "down"
    assert "up" not in steps.ran
    assert "restore" in steps.ran
    assert_restored(box, before, NAMES)


def _interrupt_dumps(monkeypatch: pytest.MonkeyPatch, steps: Steps, step: str, skip: int) -> list[int]:
    """Every netlink dump of `step` after the first `skip` comes back flagged NLM_F_DUMP_INTR
    (the kernel's "this changed while you read it"): replies are read in full, then refused."""
    real_send, real_replies = link._Rtnl._send, link._Rtnl._replies
    dumps: list[int] = []

    def send(self: link._Rtnl, msg: Any, msg_type: int, flags: int) -> int:
        self._last_flags = flags  # type: ignore[attr-defined]
        return real_send(self, msg, msg_type, flags)

    def replies(self: link._Rtnl, seq: int, cls: Any) -> Iterator[Any]:
        msgs = real_replies(self, seq, cls)
        if steps.current != step or getattr(self, "_last_flags", 0) & link.NLM_F_DUMP != link.NLM_F_DUMP:
            return msgs
        dumps.append(seq)
        if len(dumps) <= skip:
            return msgs
        list(msgs)
        raise link._DumpInterrupted

    monkeypatch.setattr(link._Rtnl, "_send", send)
    monkeypatch.setattr(link._Rtnl, "_replies", replies)
    return dumps


@pytest.mark.parametrize("step", ["down", "up"])
def test_dumps_keep_being_interrupted(
    box: Sandbox, before: dict[str, list[str]], steps: Steps, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """In down(): the snapshot cannot be read, nothing is changed yet. In up(): from its second
    dump on, i.e. with eth0 up again and nothing put back yet."""
    dumps = _interrupt_dumps(monkeypatch, steps, step, skip=0 if step == "down" else 1)
    out = add(box, KEYS)
    assert len(dumps) >= link._DUMP_TRIES, "every retry was interrupted"
    assert_error(out, 11, "addresses and routes kept changing")
    assert_restored(box, before, NAMES)


# --- 6. linkBounce never: earlier values back, the link never touched ----------------------------


def test_never_bounce_refused_last_value(
    box: Sandbox, before: dict[str, list[str]], steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [*NAMES, REFUSED[1]]
    state = dump(box.ns, names)
    carrier = carrier_changes(box.ns)
    admin: list[object] = []
    real_admin = linkstate.admin_state

    def spy(ifname: str, want_up: bool | None = None) -> bool:
        admin.append(want_up)
        return real_admin(ifname, want_up)

    # every caller of the ioctl: linkstate's is_up/set_up and link's Bounce
    monkeypatch.setattr(linkstate, "admin_state", spy)
    monkeypatch.setattr(link, "admin_state", spy)
    out = add(box, [*KEYS, REFUSED[0]], bounce="never")
    assert_error(out, 102, REFUSED[1], "refused")
    assert steps.ran == [], "no bounce"
    assert admin == [None], "only the is_up() check: the link was never set down or up"
    # no DAD to wait for: nothing may be tentative at once, and the dump is identical at once
    assert not _tentative(box.ns)
    after = dump(box.ns, names)
    assert after == state, _diff(state, after)
    assert carrier_changes(box.ns) == carrier, "eth0's carrier never went down"
    link_line = after["ip -d link show eth0"][0]
    assert ",UP,LOWER_UP>" in link_line  # admin up, carrier up
    assert "state UP" in link_line  # operstate
    gateway_answers(box.ns)
