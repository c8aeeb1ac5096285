"""Every refusal, through cnitool: the right CNI error object, and nothing changed anywhere.

"Before" is taken from a reference attachment: bridge alone (the same bridge element) in a
second container netns of the same host netns. A refused cni-sysctl must leave the container
netns exactly as bridge alone leaves it, the host netns as it was, and the real host alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Env, load_conflist, plugin_of, read_host_sysctl

pytestmark = pytest.mark.e2e

# Per-interface directories and netns-wide values compared in the container netns.
CONTAINER_SNAPSHOT = (
    "/proc/sys/net/ipv4/conf/eth0",
    "/proc/sys/net/ipv6/conf/eth0",
    "/proc/sys/net/ipv4/conf/all",
    "/proc/sys/net/ipv6/conf/all",
    "/proc/sys/net/ipv4/conf/default",
    "/proc/sys/net/ipv6/conf/default",
    "/proc/sys/net/ipv4/tcp_keepalive_time",
    "/proc/sys/net/ipv4/ip_local_port_range",
    "/proc/sys/net/core/somaxconn",
)
HOST_SNAPSHOT = (
    "/proc/sys/net/ipv4/conf/all",
    "/proc/sys/net/ipv6/conf/all",
    "/proc/sys/net/ipv4/conf/default",
    "/proc/sys/net/ipv6/conf/default",
    "/proc/sys/net/ipv4/conf/cni-sysctl0",
    "/proc/sys/net/ipv6/conf/cni-sysctl0",
    "/proc/sys/net/ipv4/tcp_keepalive_time",
    "/proc/sys/net/core/somaxconn",
)
REAL_HOST_KEYS = (
    "net/ipv4/tcp_keepalive_time",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/ipv6/conf/all/accept_ra",
    "net/ipv6/conf/default/accept_ra",
    "net/ipv6/conf/default/mtu",
)
# Keys that exist in the initial netns but not in a child one (not network-namespaced), most
# familiar first; which of them are absent depends on the kernel (net.core.rmem_max became
# per-netns in Linux 6.x).
HOST_ONLY_CANDIDATES = ("net.core.rmem_max", "net.core.netdev_max_backlog", "net.ipv4.tcp_mem")


def snapshot(env: Env, paths: tuple[str, ...], ns: str) -> dict[str, str]:
    """Every readable value below `paths` inside `ns`, as {path: value}."""
    out = env.in_ctr("grep", "-rs", "", *paths, ns=ns, check=False).stdout
    values: dict[str, str] = {}
    for line in out.splitlines():
        path, _, value = line.partition(":")
        values[path] = value
    assert values, f"nothing readable below {paths} in {ns}"
    return values


def routes_of(env: Env, family: str, ns: str) -> list[tuple[str, str, str]]:
    """Routes of every table, without what differs between two identical attachments."""
    out = env.in_ctr("ip", "-j", f"-{family}", "route", "show", "table", "all", ns=ns).stdout
    return sorted(
        (str(r.get("dst")), str(r.get("gateway", "")), str(r.get("table", "main")))
        for r in json.loads(out)
        if not str(r.get("dst")).startswith("fe80")
    )


def host_only_key(env: Env) -> str:
    for key in HOST_ONLY_CANDIDATES:
        path = "/proc/sys/" + key.replace(".", "/")
        if Path(path).exists() and env.in_ctr("test", "-e", path, check=False).returncode != 0:
            return key
    pytest.fail(f"every one of {HOST_ONLY_CANDIDATES} exists in a child netns on this kernel")


class Case:
    def __init__(
        self,
        code: int,
        words: list[str],
        sysctl: object = None,
        cap_args: object = None,
        extra: dict[str, object] | None = None,
        policy: str | None = None,
    ) -> None:
        self.code = code
        self.words = words
        self.sysctl = sysctl
        self.cap_args = cap_args
        self.extra = extra or {}
        self.policy = policy


CASES = {
    "outside-net": Case(7, ["kernel.core_pattern", "--sysctl"], sysctl=["kernel.core_pattern=|/bin/false"]),
    "concrete-interface": Case(
        7,
        ["net.ipv6.conf.eth0.accept_ra", "ipv6.conf.accept_ra", "net.ipv6.conf.IFNAME.accept_ra"],
        sysctl=["net.ipv6.conf.eth0.accept_ra=2"],
    ),
    "dot-dot": Case(7, ["ipv4.conf../.."], sysctl=["ipv4.conf../..=1"]),
    "absolute-path": Case(
        7, ["/proc/sys/net/ipv4/tcp_keepalive_time"], sysctl=["/proc/sys/net/ipv4/tcp_keepalive_time=1"]
    ),
    "glob": Case(7, ["ipv4.conf.*"], sysctl=["ipv4.conf.*=1"]),
    "unknown-key": Case(
        101,
        ["net.ipv4.tcp_keepalive_tim", "did you mean 'tcp_keepalive_time'"],
        sysctl=["net.ipv4.tcp_keepalive_tim=600"],
    ),
    "host-only-key": Case(101, ["{host_only}"], sysctl=["{host_only}=1000"]),
    "kernel-refuses-later-value": Case(
        102,
        ["net.ipv6.conf.eth0.mtu", "'100'"],
        sysctl=["net.ipv4.tcp_keepalive_time=600", "ipv6.conf.mtu=100"],
    ),
    "kernel-refuses-during-link-bounce": Case(
        102,
        ["net.ipv6.conf.eth0.mtu", "'100'"],
        sysctl=["ipv6.conf.accept_ra=2", "ipv6.conf.addr_gen_mode=1", "ipv6.conf.mtu=100"],
    ),
    "newline-in-value": Case(
        7, ["net.ipv4.tcp_keepalive_time", "newline"], sysctl={"net.ipv4.tcp_keepalive_time": "600\n700"}
    ),
    "runtime-config-without-policy": Case(
        100,
        ["ipv6.conf.accept_ra", "{policy}"],
        cap_args={"sysctl": ["ipv6.conf.accept_ra=0"]},
        extra={"capabilities": {"sysctl": True}},
    ),
    "runtime-config-denied-by-policy": Case(
        100,
        ["net.ipv4.tcp_keepalive_time", "{policy}"],
        cap_args={"sysctl": {"net.ipv4.tcp_keepalive_time": "600"}},
        extra={"capabilities": {"sysctl": True}},
        policy="allow: [ipv6.conf.accept_ra]\n",
    ),
    "args-without-policy": Case(
        100,
        ["ipv6.conf.accept_ra", "{policy}"],
        extra={"args": {"cni": {"sysctl": ["ipv6.conf.accept_ra=0"]}}},
    ),
}


def chain(case: Case, subst: dict[str, str]) -> list[dict[str, object]]:
    """The shipped bridge conflist with cni-sysctl configured as the case says."""
    doc = load_conflist("sysctl-bridge")
    ours = plugin_of(doc, "cni-sysctl")
    ours["sysctl"] = json.loads(fill(json.dumps(case.sysctl if case.sysctl is not None else []), subst))
    ours["policy"] = subst["{policy}"]
    ours.update(case.extra)
    plugins: list[dict[str, object]] = doc["plugins"]
    return plugins


def fill(text: str, subst: dict[str, str]) -> str:
    for placeholder, value in subst.items():
        text = text.replace(placeholder, value)
    return text


@pytest.mark.parametrize("name", list(CASES))
def test_refused_and_nothing_changed(env: Env, name: str) -> None:
    case = CASES[name]
    policy_path = env.tmp / "cni-sysctl.yaml"
    if case.policy is not None:
        policy_path.write_text(case.policy)

    reference = env.new_container()
    bridge_only = [plugin_of(load_conflist("sysctl-bridge"), "bridge")]
    env.attach(env.conflist(bridge_only), netns=env.netns_path(reference))
    container_before = snapshot(env, CONTAINER_SNAPSHOT, reference)
    host_before = snapshot(env, HOST_SNAPSHOT, env.host)
    real_before = {p: read_host_sysctl(p) for p in REAL_HOST_KEYS}
    assert container_before["/proc/sys/net/ipv4/tcp_keepalive_time"] == "7200"

    subst = {"{policy}": str(policy_path)}
    if "{host_only}" in json.dumps(case.sysctl):
        subst["{host_only}"] = host_only_key(env)
    refused = env.add(env.conflist(chain(case, subst)), cap_args=case.cap_args)

    assert refused.rc != 0
    assert refused.code == case.code, refused.stderr
    for word in case.words:
        assert fill(word, subst) in refused.text, f"{fill(word, subst)!r} not in {refused.text!r}"
    assert "cni-sysctl" in refused.stderr  # libcni names the failing plugin

    # Nothing changed: the container netns is as bridge alone leaves it (eth0 still up with
    # its addresses), the host netns and the real host as they were.
    assert snapshot(env, CONTAINER_SNAPSHOT, env.ctr) == container_before
    assert env.link_up()
    assert env.addresses() == env.addresses(ns=reference)
    assert not env.tentative()
    assert len(env.link_local()) == 1, "eth0 lost (or doubled) its link-local address"
    for family in ("4", "6"):
        assert routes_of(env, family, env.ctr) == routes_of(env, family, reference)
    assert snapshot(env, HOST_SNAPSHOT, env.host) == host_before
    assert {p: read_host_sysctl(p) for p in REAL_HOST_KEYS} == real_before


def test_runtime_config_allowed_by_policy(env: Env) -> None:
    policy_path = env.tmp / "cni-sysctl.yaml"
    policy_path.write_text("allow: [ipv6.conf.accept_ra]\n")
    doc = load_conflist("sysctl-bridge")
    ours = plugin_of(doc, "cni-sysctl")
    ours.update(
        {"sysctl": ["net.ipv4.tcp_keepalive_time=600"], "policy": str(policy_path), "capabilities": {"sysctl": True}}
    )
    env.attach(env.conflist(doc["plugins"]), cap_args={"sysctl": ["ipv6.conf.accept_ra=0"]})
    assert env.sysctl("net/ipv6/conf/eth0/accept_ra") == "0"
    assert env.sysctl("net/ipv4/tcp_keepalive_time") == "600"


def test_runtime_config_ignored_without_the_capability(env: Env) -> None:
    """libcni passes runtimeConfig.sysctl only to a plugin that declares the capability."""
    doc = load_conflist("sysctl-bridge")
    ours = plugin_of(doc, "cni-sysctl")
    ours.update({"sysctl": [], "policy": str(env.tmp / "absent.yaml")})
    env.attach(env.conflist(doc["plugins"]), cap_args={"sysctl": ["ipv6.conf.accept_ra=0"]})
    assert env.sysctl("net/ipv6/conf/eth0/accept_ra") == env.sysctl("net/ipv6/conf/default/accept_ra")


POLICY_WITH_RULES = """\
allow:
  - key: net.ipv4.tcp_keepalive_*
    range: [60, 7200]
  - key: ipv4.conf.rp_filter
    values: ["0", "1", "2"]
"""


@pytest.mark.parametrize(
    ("untrusted", "allowed"),
    [
        ("net.ipv4.tcp_keepalive_time=600", True),
        ("net.ipv4.tcp_keepalive_time=10", False),
        ("net.ipv4.conf.IFNAME.rp_filter=2", True),
        ("ipv4.conf.rp_filter=2", True),
        ("ipv4.conf.rp_filter=7", False),
        ("ipv4.conf.arp_ignore=1", False),
    ],
)
def test_policy_rules_for_runtime_config(env: Env, untrusted: str, allowed: bool) -> None:
    policy_path = env.tmp / "cni-sysctl.yaml"
    policy_path.write_text(POLICY_WITH_RULES)
    doc = load_conflist("sysctl-bridge")
    plugin_of(doc, "cni-sysctl").update({"sysctl": [], "policy": str(policy_path), "capabilities": {"sysctl": True}})
    added = env.add(env.conflist(doc["plugins"]), cap_args={"sysctl": [untrusted]})
    key, _, value = untrusted.partition("=")
    path = "net/ipv4/tcp_keepalive_time" if "keepalive" in key else f"net/ipv4/conf/eth0/{key.rsplit('.', 1)[1]}"
    if allowed:
        assert added.rc == 0, added.stderr
        assert env.sysctl(path) == value
    else:
        assert added.code == 100, added.stderr
        assert key in added.msg
        assert str(policy_path) in added.msg
        assert env.sysctl(path) != value
