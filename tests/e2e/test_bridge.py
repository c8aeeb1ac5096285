"""cni-sysctl chained after bridge + host-local, through cnitool (libcni), in every CNI version
libcni can send. Every value is read back inside the container netns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    CHECK_VERSIONS,
    THREE_KEYS,
    VERSIONS,
    Env,
    load_conflist,
    plugin_of,
    read_host_sysctl,
    three_paths,
)
from tests.netlab import run

pytestmark = pytest.mark.e2e

# Values of the throwaway host netns that a chained cni-sysctl must leave alone.
HOST_KEYS = (
    "net/ipv4/tcp_keepalive_time",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/ipv6/conf/all/accept_ra",
    "net/ipv6/conf/default/accept_ra",
)


def bridge_plugins() -> list[dict[str, object]]:
    """The bridge element of the shipped conflist, alone."""
    return [plugin_of(load_conflist("sysctl-bridge"), "bridge")]


def shape(result: dict[str, Any]) -> dict[str, Any]:
    """A result with what differs between two identical attachments blanked: MAC addresses,
    the generated host-side veth name and the netns path."""
    out: dict[str, Any] = json.loads(json.dumps(result))
    for iface in out.get("interfaces", []):
        iface["mac"] = "<mac>"
        if iface.get("sandbox"):
            iface["sandbox"] = "<netns>"
        elif str(iface["name"]).startswith("veth"):
            iface["name"] = "<veth>"
    return out


def container_mac(env: Env, ifname: str = "eth0") -> str:
    links = json.loads(env.in_ctr("ip", "-j", "link", "show", "dev", ifname).stdout)
    return str(links[0]["address"])


@pytest.mark.parametrize("version", VERSIONS)
def test_bridge_chain_sets_values_and_keeps_the_attachment(env: Env, version: str) -> None:
    real_keepalive = read_host_sysctl("net/ipv4/tcp_keepalive_time")
    host_before = {p: env.host_sysctl(p) for p in HOST_KEYS}

    net = env.shipped("sysctl-bridge", version)
    result = env.attach(net)

    for path, value in three_paths().items():
        assert env.sysctl(path) == value, path

    # eth0 keeps bridge's IPv4 and IPv6 addresses and both default routes, and is up.
    ips = result["ips"]
    assert isinstance(ips, list)
    wanted = {str(ip["address"]) for ip in ips}
    assert {a for a in wanted if ":" in a}, "bridge gave no IPv6 address"
    assert {a for a in wanted if ":" not in a}, "bridge gave no IPv4 address"
    assert env.addresses() == wanted
    assert not env.tentative(), "IPv6 addresses restored after the link bounce must be usable at once"
    gateways = {str(ip["gateway"]) for ip in ips}
    assert env.default_gateways() == gateways
    assert env.link_up()
    for gw in sorted(gateways):
        assert env.ping(gw), f"gateway {gw} does not answer"

    # Neither the throwaway host netns nor the real host changed.
    assert {p: env.host_sysctl(p) for p in HOST_KEYS} == host_before
    assert read_host_sysctl("net/ipv4/tcp_keepalive_time") == real_keepalive

    # The result is bridge's, in the config's version: the same shape as a bridge-only run
    # of the same configuration in a fresh pair of namespaces.
    assert result["cniVersion"] == version
    for ip in ips:
        if version in ("0.3.1", "0.4.0"):
            assert ip["version"] == ("6" if ":" in str(ip["address"]) else "4")
        else:
            assert "version" not in ip
    sandboxed = [i for i in result["interfaces"] if i.get("sandbox")]
    assert [(i["name"], i["mac"], i["sandbox"]) for i in sandboxed] == [("eth0", container_mac(env), env.netns_path())]
    ref = env.sibling("bridge-only")
    bridge_only = ref.attach(ref.conflist(bridge_plugins(), version))
    assert shape(result) == shape(bridge_only)


@pytest.mark.parametrize("version", VERSIONS)
def test_object_form(env: Env, version: str) -> None:
    sysctl = {
        "ipv6.conf.accept_ra": "2",
        "net.ipv4.conf.IFNAME.rp_filter": 2,  # numbers are accepted and converted
        "net.ipv4.tcp_keepalive_time": "600",
    }
    env.attach(env.shipped("sysctl-bridge", version, sysctl=sysctl))
    for path, value in three_paths().items():
        assert env.sysctl(path) == value, path


# Order made observable with two different keys the kernel checks against each other: in a new
# netns ip_unprivileged_port_start is 1024, and ip_local_port_range may not start below it.
UNPRIVILEGED_FROM_0 = "net.ipv4.ip_unprivileged_port_start=0"
RANGE_FROM_500 = "net.ipv4.ip_local_port_range=500 65000"


def test_list_form_keeps_order(env: Env) -> None:
    env.attach(env.shipped("sysctl-bridge", sysctl=[UNPRIVILEGED_FROM_0, RANGE_FROM_500]))
    assert env.sysctl("net/ipv4/ip_unprivileged_port_start") == "0"
    assert env.sysctl("net/ipv4/ip_local_port_range").split() == ["500", "65000"]
    # the other order: the kernel refuses the range while 1024 still holds
    other = env.new_container()
    refused = env.add(
        env.shipped("sysctl-bridge", sysctl=[RANGE_FROM_500, UNPRIVILEGED_FROM_0]), netns=env.netns_path(other)
    )
    assert refused.code == 102, refused.stderr
    assert "net.ipv4.ip_local_port_range" in refused.msg
    assert env.sysctl("net/ipv4/ip_unprivileged_port_start", ns=other) == "1024"


def test_object_form_order_is_lost_through_libcni(env: Env) -> None:
    """libcni re-serialises a plugin's config with object keys sorted, so object keys are written
    in sorted order, not the order of the file: the reason the list form exists. The object below
    is in the order that works; 'ip_local_port_range' sorts first, and the kernel refuses it."""
    sysctl = {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ip_local_port_range": "500 65000"}
    net = env.shipped("sysctl-bridge", sysctl=sysctl)
    assert list(json.loads((env.netconf / f"{net}.conflist").read_text())["plugins"][1]["sysctl"]) == list(sysctl)
    refused = env.add(net)
    assert refused.code == 102, refused.stderr
    assert "net.ipv4.ip_local_port_range" in refused.msg
    assert env.sysctl("net/ipv4/ip_unprivileged_port_start") == "1024"


def test_a_key_given_twice_by_the_conflist_is_refused(env: Env) -> None:
    """Which value should win is not for the plugin to guess (issue 9): one source, one value per key."""
    refused = env.add(
        env.shipped("sysctl-bridge", sysctl=["net.ipv4.tcp_keepalive_time=300", "net/ipv4/tcp_keepalive_time=900"])
    )
    assert refused.code == 7, refused.stderr
    assert refused.msg == (
        "sysctl: key net.ipv4.tcp_keepalive_time given twice "
        "('net.ipv4.tcp_keepalive_time' and 'net/ipv4/tcp_keepalive_time')"
    )
    assert env.sysctl("net/ipv4/tcp_keepalive_time") == "7200"


def test_list_form_slash_keys_and_several_field_values(env: Env) -> None:
    sysctl = [
        "net/ipv4/conf/IFNAME/arp_ignore=1",
        "ipv6/neigh/retrans_time_ms=1500",
        "net.ipv4.ip_local_port_range=40000   50000",
        "net.ipv4.conf.all.arp_announce=2",
    ]
    net = env.shipped("sysctl-bridge", sysctl=sysctl)
    env.attach(net)
    assert env.sysctl("net/ipv4/conf/eth0/arp_ignore") == "1"
    assert env.sysctl("net/ipv6/neigh/eth0/retrans_time_ms") == "1500"
    assert env.sysctl("net/ipv4/ip_local_port_range").split() == ["40000", "50000"]
    assert env.sysctl("net/ipv4/conf/all/arp_announce") == "2"
    # The kernel reads the range back with a tab; CHECK compares fields, not spacing.
    check = env.check(net)
    assert check.rc == 0, check.stderr


def test_runtime_cni_args_are_ignored(env: Env) -> None:
    """The CNI_ARGS a Kubernetes runtime sends do not disturb ADD, CHECK or DEL."""
    cni_args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123"
    net = env.shipped("sysctl-bridge")
    env.attach(net, cni_args=cni_args)
    for path, value in three_paths().items():
        assert env.sysctl(path) == value, path
    check = env.check(net, cni_args=cni_args)
    assert check.rc == 0, check.stderr
    gone = env.delete(net, cni_args=cni_args)
    assert gone.rc == 0, gone.stderr


def test_version_through_libcni(env: Env) -> None:
    """libcni's GetVersionInfo (cnitool version NET) gets our supported versions."""
    net = env.shipped("sysctl-bridge")
    proc = env.cnitool("version", net)
    assert proc.rc == 0, proc.stderr
    info = json.loads(proc.stdout)["cni-sysctl"]
    assert info["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def test_dotted_interface_name(env: Env) -> None:
    """bridge creates any CNI_IFNAME; eth0.100 is one path component, never split."""
    sysctl = ["ipv4.conf.rp_filter=2", "ipv6.conf.accept_ra=2", "net.ipv4.conf.IFNAME.arp_ignore=1"]
    net = env.shipped("sysctl-bridge", sysctl=sysctl)
    result = env.attach(net, ifname="eth0.100")
    assert [i["name"] for i in result["interfaces"] if i.get("sandbox")] == ["eth0.100"]
    assert env.sysctl("net/ipv4/conf/eth0.100/rp_filter") == "2"
    assert env.sysctl("net/ipv6/conf/eth0.100/accept_ra") == "2"
    assert env.sysctl("net/ipv4/conf/eth0.100/arp_ignore") == "1"
    assert env.link_up("eth0.100")
    assert env.addresses("eth0.100") == {str(ip["address"]) for ip in result["ips"]}
    check = env.check(net, ifname="eth0.100")
    assert check.rc == 0, check.stderr
    assert env.delete(net, ifname="eth0.100").rc == 0


def test_addr_gen_mode_takes_effect_at_link_up(env: Env) -> None:
    """The contract's observable check of the link bounce: with addr_gen_mode=1 eth0 comes up
    again without a link-local address, and keeps its IPAM addresses and default routes."""
    net = env.shipped("sysctl-bridge", sysctl=["ipv6.conf.addr_gen_mode=1"])
    result = env.attach(net)
    assert env.sysctl("net/ipv6/conf/eth0/addr_gen_mode") == "1"
    assert env.link_up()
    assert env.link_local() == set(), "eth0 still has an fe80:: address: the link was not bounced"
    ips = result["ips"]
    assert isinstance(ips, list)
    assert env.addresses() == {str(ip["address"]) for ip in ips}
    assert not env.tentative()
    gateways = {str(ip["gateway"]) for ip in ips}
    assert env.default_gateways() == gateways
    for gw in sorted(gateways):
        assert env.ping(gw), f"gateway {gw} does not answer"
    check = env.check(net)
    assert check.rc == 0, check.stderr


# -- CHECK ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", CHECK_VERSIONS)
def test_check_passes_after_add(env: Env, version: str) -> None:
    net = env.shipped("sysctl-bridge", version)
    env.attach(net)
    check = env.check(net)
    assert check.rc == 0, check.stderr


@pytest.mark.parametrize(
    ("path", "changed", "name"),
    [
        ("net/ipv6/conf/eth0/accept_ra", "1", "net.ipv6.conf.eth0.accept_ra"),
        ("net/ipv4/conf/eth0/rp_filter", "0", "net.ipv4.conf.eth0.rp_filter"),
        ("net/ipv4/tcp_keepalive_time", "7200", "net.ipv4.tcp_keepalive_time"),
    ],
    ids=["short-form", "IFNAME-form", "netns-wide"],
)
@pytest.mark.parametrize("version", CHECK_VERSIONS)
def test_check_reports_a_value_changed_by_hand(env: Env, version: str, path: str, changed: str, name: str) -> None:
    net = env.shipped("sysctl-bridge", version)
    env.attach(net)
    env.in_ctr("sh", "-c", f"echo {changed} > /proc/sys/{path}")
    check = env.check(net)
    assert check.rc != 0
    assert check.code == 104, check.stderr
    assert name in check.msg
    for other in three_paths():
        if other != path:
            assert other.replace("/", ".") not in check.msg


def test_check_fails_when_the_interface_is_gone(env: Env) -> None:
    sysctl = plugin_of(load_conflist("sysctl-bridge"), "cni-sysctl")
    net = env.shipped("sysctl-bridge")
    result = env.attach(net)
    env.in_ctr("ip", "link", "del", "eth0")

    # Through libcni, bridge's own CHECK notices first and its error is the one reported.
    check = env.check(net)
    assert check.rc != 0
    assert check.error is not None, check.stderr

    # Our CHECK, given what libcni would give it, names the missing interface (code 104).
    config = {"cniVersion": "1.0.0", "name": net, **sysctl, "prevResult": result}
    ours = env.plugin("CHECK", config)
    assert ours.rc != 0
    assert ours.code == 104, ours.stdout
    assert "eth0" in ours.msg


# -- DEL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_del_twice(env: Env, version: str) -> None:
    net = env.shipped("sysctl-bridge", version)
    env.attach(net)
    first = env.delete(net)
    assert first.rc == 0, first.stderr
    assert env.in_ctr("ip", "link", "show", "dev", "eth0", check=False).returncode != 0
    second = env.delete(net)
    assert second.rc == 0, second.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_del_after_the_netns_is_gone(env: Env, version: str) -> None:
    net = env.shipped("sysctl-bridge", version)
    env.attach(net)
    path = env.netns_path()
    run("ip", "netns", "del", env.ctr)
    assert not Path(path).exists()
    gone = env.delete(net)
    assert gone.rc == 0, gone.stderr
    assert not Path(path).exists(), "DEL created the netns file again"


def test_del_without_add(env: Env) -> None:
    """No cached result, no interface: DEL still succeeds (runtimes retry DEL freely)."""
    gone = env.delete(env.shipped("sysctl-bridge"))
    assert gone.rc == 0, gone.stderr


def test_three_keys_match_the_shipped_conflist() -> None:
    """The constants these tests assert on are the ones users copy."""
    assert plugin_of(load_conflist("sysctl-bridge"), "cni-sysctl")["sysctl"] == THREE_KEYS


@pytest.mark.parametrize("value", ["0x258", "0600"])
def test_add_and_check_agree_on_values_the_kernel_rewrites(env: Env, value: str) -> None:
    """Whatever ADD accepts, an immediate CHECK must pass (or ADD must refuse it)."""
    net = env.shipped("sysctl-bridge", sysctl=[f"net.ipv4.tcp_keepalive_time={value}"])
    added = env.add(net)
    if added.rc != 0:
        assert env.sysctl("net/ipv4/tcp_keepalive_time") == "7200"
        return
    check = env.check(net)
    assert check.rc == 0, check.stderr
