"""cni-sysctl chained after each interface-creating plugin: the shipped conflists, run by
cnitool against Debian's macvlan, ptp, host-device and ipvlan.

The links these plugins need on the host side (a macvlan/ipvlan parent, a device to move in)
are veths made inside the throwaway host netns, under the names the conflists use.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import CHECK_VERSIONS, VERSIONS, Env, three_paths

pytestmark = pytest.mark.e2e


def veth_pair(env: Env, name: str, peer: str, peer_addresses: tuple[str, ...]) -> None:
    """A veth pair in the host netns, both ends up, the peer holding `peer_addresses`."""
    env.in_host("ip", "link", "add", name, "type", "veth", "peer", "name", peer)
    for address in peer_addresses:
        env.in_host("ip", "addr", "add", address, "dev", peer, *(("nodad",) if ":" in address else ()))
    env.in_host("ip", "link", "set", peer, "up")
    env.in_host("ip", "link", "set", name, "up")


def assert_attached(env: Env, net: str, version: str, result: dict[str, object], gateways: tuple[str, ...]) -> None:
    """Values set, eth0 up with its IPAM addresses, the gateways answer, CHECK and DEL pass."""
    for path, value in three_paths().items():
        assert env.sysctl(path) == value, path
    assert env.link_up()
    ips = result["ips"]
    assert isinstance(ips, list)
    assert env.addresses() == {str(ip["address"]) for ip in ips}
    assert {":" in str(ip["address"]) for ip in ips} == {True, False}, "want both families"
    for gw in gateways:
        assert env.ping(gw), f"{gw} does not answer"
    if version in CHECK_VERSIONS:
        check = env.check(net)
        assert check.rc == 0, check.stderr
    gone = env.delete(net)
    assert gone.rc == 0, gone.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_after_macvlan(env: Env, version: str) -> None:
    # macvlan's master is veth-parent; its peer in the host netns plays the gateway.
    veth_pair(env, "veth-parent", "veth-peer", ("10.88.2.1/24", "fd00:88:2::1/64"))
    net = env.shipped("sysctl-macvlan", version)
    result = env.attach(net)
    assert_attached(env, net, version, result, ("10.88.2.1", "fd00:88:2::1"))


@pytest.mark.parametrize("version", VERSIONS)
def test_after_ptp(env: Env, version: str) -> None:
    net = env.shipped("sysctl-ptp", version)
    result = env.attach(net)
    gateways = tuple(str(ip["gateway"]) for ip in result["ips"])
    assert env.default_gateways() == set(gateways)
    assert_attached(env, net, version, result, gateways)


@pytest.mark.parametrize("version", VERSIONS)
def test_after_host_device(env: Env, version: str) -> None:
    # host-device moves veth-guest into the container as eth0; veth-hostend stays behind.
    veth_pair(env, "veth-guest", "veth-hostend", ("10.88.5.1/24", "fd00:88:5::1/64"))
    net = env.shipped("sysctl-host-device", version)
    result = env.attach(net)
    assert env.in_host("ip", "link", "show", "dev", "veth-guest", check=False).returncode != 0
    assert_attached(env, net, version, result, ("10.88.5.1", "fd00:88:5::1"))
    # DEL hands the device back to the host netns.
    assert env.in_host("ip", "link", "show", "dev", "veth-guest", check=False).returncode == 0


def kernel_has_ipvlan(env: Env) -> tuple[bool, str]:
    probe = env.in_host(
        "ip", "link", "add", "ipvprobe", "link", "veth-parent", "type", "ipvlan", "mode", "l2", check=False
    )
    if probe.returncode == 0:
        env.in_host("ip", "link", "del", "ipvprobe")
        return True, ""
    return False, probe.stderr.strip()


@pytest.mark.parametrize("version", VERSIONS)
def test_after_ipvlan(env: Env, version: str) -> None:
    veth_pair(env, "veth-parent", "veth-peer", ("10.88.3.1/24", "fd00:88:3::1/64"))
    present, why = kernel_has_ipvlan(env)
    if not present:
        assert "not supported" in why or "Unknown device type" in why, why
        pytest.skip(f"kernel has no ipvlan link type ({why})")
    net = env.shipped("sysctl-ipvlan", version)
    result = env.attach(net)
    assert_attached(env, net, version, result, ("10.88.3.1", "fd00:88:3::1"))
