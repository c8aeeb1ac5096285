"""cni-sysctl chained after bridge + host-local in a network of podman's CNI backend: the values
are read from inside a real container (runc, busybox rootfs), the container reaches its gateway,
and podman's teardown runs DEL through the chain."""

from __future__ import annotations

import pytest

from tests.runtime.conftest import Podman

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SUBNET4, GATEWAY4 = "10.88.77.0/24", "10.88.77.1"
SUBNET6, GATEWAY6 = "fd00:88:77::/64", "fd00:88:77::1"

# One key of each form: short per-interface (a link-bounce key under linkBounce: auto), full
# per-interface with the IFNAME placeholder, namespace-wide.
KEYS = [
    "ipv6.conf.accept_ra=2",
    "net.ipv4.conf.IFNAME.rp_filter=2",
    "net.ipv4.tcp_keepalive_time=600",
]
# Where they land for the container's eth0, with the values to find there.
WANTED = {
    "net/ipv6/conf/eth0/accept_ra": "2",
    "net/ipv4/conf/eth0/rp_filter": "2",
    "net/ipv4/tcp_keepalive_time": "600",
}


def probe(gateways: tuple[str, ...]) -> str:
    """A busybox sh script for inside the container; one "what value" line per observation."""
    return f"""
for p in {" ".join(WANTED)}; do echo "sysctl $p $(cat /proc/sys/$p)"; done
echo "operstate $(cat /sys/class/net/eth0/operstate)"
ip -o addr show dev eth0 scope global | while read -r _ _ _ a _; do echo "addr $a"; done
for gw in {" ".join(gateways)}; do
    if ping -c1 -w5 "$gw" >/dev/null 2>&1; then echo "ping $gw ok"; else echo "ping $gw failed"; fi
done
"""


def observe(podman: Podman, network: str, gateways: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Run probe() in a new container on `network`: {"sysctl <path>": {value}, "addr": {...}, ...}."""
    proc = podman.run(network, probe(gateways))
    assert proc.returncode == 0, f"podman run on {network} failed (rc {proc.returncode}):\n{proc.stderr.strip()}"
    seen: dict[str, set[str]] = {}
    for line in proc.stdout.splitlines():
        words = line.split()
        if not words:
            continue
        n = 2 if words[0] in ("sysctl", "ping") else 1
        seen.setdefault(" ".join(words[:n]), set()).add(" ".join(words[n:]))
    return seen


def test_podman_container_sees_the_values_on_its_eth0(podman: Podman) -> None:
    host_keepalive = podman.host_sysctl("net/ipv4/tcp_keepalive_time")

    # Control: the same bridge network without cni-sysctl leaves other values in a container.
    plain = observe(podman, podman.network(None, "10.88.76.0/24", "fd00:88:76::/64"))
    for path, value in WANTED.items():
        assert plain[f"sysctl {path}"] != {value}, f"{path} is already {value} without cni-sysctl"

    net = podman.network(KEYS, SUBNET4, SUBNET6)
    seen = observe(podman, net, (GATEWAY4, GATEWAY6))

    for path, value in WANTED.items():
        assert seen.get(f"sysctl {path}") == {value}, f"{path} inside the container: {seen.get(f'sysctl {path}')}"
    # eth0 is up with bridge's addresses from both ranges, and reaches the bridge (its gateway).
    assert seen.get("operstate") == {"up"}
    addrs = seen.get("addr", set())
    assert any(a.startswith("10.88.77.") for a in addrs), f"no IPv4 address from {SUBNET4}: {addrs}"
    assert any(a.startswith("fd00:88:77::") for a in addrs), f"no IPv6 address from {SUBNET6}: {addrs}"
    assert seen.get(f"ping {GATEWAY4}") == {"ok"}, seen
    assert seen.get(f"ping {GATEWAY6}") == {"ok"}, seen

    # The namespace-wide key stayed in the container's netns.
    assert podman.host_sysctl("net/ipv4/tcp_keepalive_time") == host_keepalive

    # `run --rm` tore the attachment down through the chain: no container, no host-side veth,
    # no address still leased.
    assert podman.containers() == []
    veths = [name for name, kind in podman.host_links().items() if kind == "veth"]
    assert veths == [], f"host-side veths left behind: {veths}"
    assert podman.leases(net) == []


def test_podman_reports_the_plugin_error_and_rolls_back(podman: Podman) -> None:
    net = podman.network(["net.ipv4.conf.IFNAME.no_such_key=1"], SUBNET4)

    proc = podman.run(net, "echo container-started")

    assert proc.returncode != 0, proc
    assert "container-started" not in proc.stdout
    # podman passes on the plugin's message, with the key expanded for eth0.
    assert 'plugin type="cni-sysctl" failed (add)' in proc.stderr, proc.stderr
    assert "net.ipv4.conf.eth0.no_such_key" in proc.stderr, proc.stderr
    # ... and deletes the half-made attachment (DEL through the chain).
    assert podman.containers() == []
    veths = [name for name, kind in podman.host_links().items() if kind == "veth"]
    assert veths == [], f"host-side veths left behind: {veths}"
    assert podman.leases(net) == []
