"""cni-sysctl under Kubernetes' runtime path: containerd's CRI plugin runs pod sandboxes (runc, a
pause image built here) and calls the CNI chain bridge + cni-sysctl through go-cni/libcni; this
suite plays the kubelet over CRI and reads the results inside each sandbox's netns."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cri.conftest import Containerd, CriError, PodsOfOneTest

pytestmark = [pytest.mark.e2e, pytest.mark.root]

# One key of each form, a link-bounce key first: short per-interface, full per-interface with
# the IFNAME placeholder, netns-wide. The list form keeps this order through libcni.
KEYS = [
    "ipv6.conf.addr_gen_mode=1",
    "ipv6.conf.accept_ra=2",
    "net.ipv4.conf.IFNAME.rp_filter=2",
    "net.ipv4.tcp_keepalive_time=600",
]
# Where they land for the sandbox's eth0, with the values to find there.
WANTED = {
    "net/ipv6/conf/eth0/addr_gen_mode": "1",
    "net/ipv6/conf/eth0/accept_ra": "2",
    "net/ipv4/conf/eth0/rp_filter": "2",
    "net/ipv4/tcp_keepalive_time": "600",
}


def cni_sysctl(sysctl: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "cni-sysctl", "sysctl": sysctl, **extra}


def test_containerd_serves_cri_v1(containerd: Containerd) -> None:
    version = containerd.version()
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"
    assert version.runtime_version.startswith("1."), version.runtime_version
    conditions = {c.type: c.status for c in containerd.status().status.conditions}
    assert conditions.get("RuntimeReady") is True, conditions


def test_sandbox_netns_has_the_values_and_the_bounce_kept_addresses_and_routes(cri: PodsOfOneTest) -> None:
    world = cri.world
    host_keepalive = world.host_sysctl("net/ipv4/tcp_keepalive_time")
    net = cri.network([cni_sysctl(KEYS)])

    pod = cri.run_pod()

    for path, value in WANTED.items():
        assert pod.sysctl(path) == value, path
    # addr_gen_mode=1 was written before eth0 came up: no link-local address was generated.
    assert pod.link_local() == set()
    # The bounce restored what bridge and host-local configured, usable at once: the addresses
    # containerd reports for the pod, both default routes, and the gateways answer.
    assert pod.link_up()
    assert len(pod.ips) == 2, pod.ips
    assert pod.addresses() == set(pod.ips)
    assert pod.tentative() == set()
    assert pod.default_gateways() == {net.gateway4, net.gateway6}
    assert pod.ping(net.gateway4)
    assert pod.ping(net.gateway6)
    # The netns-wide key stayed in the pod: the host netns containerd runs in kept its value.
    assert world.host_sysctl("net/ipv4/tcp_keepalive_time") == host_keepalive


def test_without_cni_sysctl_the_sandbox_has_kernel_defaults(cri: PodsOfOneTest) -> None:
    """The control of the test above: the same bridge network without cni-sysctl."""
    cri.network([])

    pod = cri.run_pod()

    for path, value in WANTED.items():
        assert pod.sysctl(path) != value, f"{path} is already {value} without cni-sysctl"
    assert len(pod.link_local()) == 1


def test_stop_and_remove_pod_sandbox_leave_nothing(cri: PodsOfOneTest) -> None:
    world = cri.world
    net = cri.network([cni_sysctl(KEYS)])
    pod = cri.run_pod()
    assert len(world.host_veths()) == 1
    assert len(world.leases(net)) == 2
    assert len(world.netns_files()) == 1
    assert pod.pid in world.cgroup_procs()

    world.stop_pod(pod.id)

    # StopPodSandbox ran DEL through the chain and stopped the sandbox: no veth, no lease, no
    # cached result, no netns, no sandbox process.
    assert world.host_veths() == []
    assert world.leases(net) == []
    assert world.cni_cache() == []
    assert world.netns_files() == []
    assert world.cgroup_procs() == []
    assert world.pod_status(pod.id).status.state == world.pb.SANDBOX_NOTREADY

    world.cri("RemovePodSandbox", world.pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id))

    assert pod.id not in world.sandbox_ids()
    with pytest.raises(CriError) as err:
        world.pod_status(pod.id)
    assert err.value.code == "NOT_FOUND"


@pytest.mark.parametrize(
    ("sysctl", "expected"),
    [
        # refused by validation, before the plugin enters the netns
        (["kernel.core_pattern=|/bin/false"], "kernel.core_pattern"),
        # refused inside the netns: the key does not exist there (expanded for eth0)
        (["net.ipv4.conf.IFNAME.no_such_key=1"], "net.ipv4.conf.eth0.no_such_key"),
        # the kernel refuses the third write: the first two are rolled back
        (["ipv6.conf.accept_ra=2", "net.ipv4.tcp_keepalive_time=600", "ipv6.conf.mtu=100"], "net.ipv6.conf.eth0.mtu"),
    ],
    ids=["not-net", "unknown-key", "kernel-refuses"],
)
def test_refused_config_fails_run_pod_sandbox_and_leaves_nothing(
    cri: PodsOfOneTest, sysctl: list[str], expected: str
) -> None:
    world = cri.world
    net = cri.network([cni_sysctl(sysctl)])

    with pytest.raises(CriError) as err:
        cri.run_pod()

    # The kubelet sees our message, with the key, in the RunPodSandbox error.
    assert err.value.method == "RunPodSandbox"
    assert 'plugin type="cni-sysctl" failed (add)' in err.value.details, err.value.details
    assert expected in err.value.details, err.value.details
    # containerd ran DEL through the chain and removed the half-made sandbox.
    assert world.sandbox_ids() == []
    assert world.netns_files() == []
    assert world.host_veths() == []
    assert world.leases(net) == []
    assert world.cni_cache() == []
    assert world.cgroup_procs() == []


def test_pod_sysctls_are_written_after_cni_and_win(cri: PodsOfOneTest) -> None:
    """containerd runs CNI ADD before runc creates the sandbox, and runc writes the pod's
    securityContext.sysctls (CRI linux.sysctls) when it does: on a key both set, the pod's value
    is the one left."""
    keys = ["net.ipv4.tcp_keepalive_time=600", "ipv4.conf.rp_filter=2", "net.ipv4.tcp_keepalive_intvl=31"]
    cri.network([cni_sysctl(keys)])

    pod = cri.run_pod(sysctls={"net.ipv4.tcp_keepalive_time": "700", "net.ipv4.conf.eth0.rp_filter": "1"})

    assert pod.sysctl("net/ipv4/tcp_keepalive_time") == "700"
    assert pod.sysctl("net/ipv4/conf/eth0/rp_filter") == "1"
    # A key only the conflist sets keeps the conflist's value.
    assert pod.sysctl("net/ipv4/tcp_keepalive_intvl") == "31"


def test_pod_sysctl_on_eth0_comes_after_link_up(cri: PodsOfOneTest) -> None:
    """Because of that order a pod can name eth0 in its sysctls (the interface exists by then),
    but the link is already up: a key that acts at link-up is written and has no effect. This is
    what cni-sysctl is for (compare the bounce test: no link-local address there)."""
    cri.network([])

    pod = cri.run_pod(sysctls={"net.ipv6.conf.eth0.addr_gen_mode": "1"})

    assert pod.sysctl("net/ipv6/conf/eth0/addr_gen_mode") == "1"
    assert len(pod.link_local()) == 1, "the link-local address was made before the pod's sysctl was written"


def test_containerd_own_pod_sysctls_also_come_after_cni(cri: PodsOfOneTest) -> None:
    """With enable_unprivileged_ports / enable_unprivileged_icmp (the session's containerd has
    both on) containerd adds net.ipv4.ip_unprivileged_port_start=0 and ping_group_range to every
    pod's sysctls that does not set them: runc writes those after CNI too."""
    cri.network([cni_sysctl(["net.ipv4.ip_unprivileged_port_start=1000", "net.ipv4.ping_group_range=100 200"])])

    pod = cri.run_pod()
    pod_sets_one = cri.run_pod(sysctls={"net.ipv4.ip_unprivileged_port_start": "900"})

    assert pod.sysctl("net/ipv4/ip_unprivileged_port_start") == "0"
    assert pod.sysctl("net/ipv4/ping_group_range").split() == ["0", "2147483647"]
    assert pod_sets_one.sysctl("net/ipv4/ip_unprivileged_port_start") == "900"
    assert pod_sets_one.sysctl("net/ipv4/ping_group_range").split() == ["0", "2147483647"]


def test_what_containerd_passes_to_the_chain(cri: PodsOfOneTest) -> None:
    """containerd 1.6 passes a plugin only the capabilities it knows (portMappings, bandwidth,
    dns, io.kubernetes.cri.pod-annotations), never "sysctl": a conflist may declare
    `"capabilities": {"sysctl": true}`, but no per-pod value arrives that way. The conflist's own
    sysctls still apply with the capability declared."""
    world = cri.world
    declared = {"sysctl": True, "portMappings": True, "bandwidth": True, "dns": True,
                "io.kubernetes.cri.pod-annotations": True}  # fmt: skip
    recorder, record = world.recorder("capabilities")
    net = cri.network([
        {**recorder, "capabilities": declared},
        cni_sysctl(["net.ipv4.tcp_keepalive_time=600"], capabilities={"sysctl": True}),
    ])  # fmt: skip
    annotations = {"kubernetes.io/ingress-bandwidth": "1M", "example.com/sysctl": "net.ipv4.tcp_keepalive_time=900"}

    pod = cri.run_pod(name="recorded", annotations=annotations, port_mappings=[(18080, 80)], dns_servers=["192.0.2.53"])

    adds = [json.loads(line) for line in record.read_text().splitlines() if '"command": "ADD"' in line]
    assert len(adds) == 1
    runtime_config = adds[0]["config"]["runtimeConfig"]
    assert set(runtime_config) == {"portMappings", "bandwidth", "dns", "io.kubernetes.cri.pod-annotations"}
    assert runtime_config["io.kubernetes.cri.pod-annotations"] == annotations
    # go-cni's structs carry no JSON tags: keys arrive in Go's field case (Go plugins decode
    # them case-insensitively; a Python plugin would have to as well).
    assert runtime_config["portMappings"] == [{"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}]
    assert runtime_config["dns"]["Servers"] == ["192.0.2.53"]
    assert runtime_config["bandwidth"]["IngressRate"] == 1_000_000
    # CNI_ARGS: the pod's identity for IPAM and policy plugins, nothing else.
    env = adds[0]["env"]
    args = dict(pair.split("=", 1) for pair in env["CNI_ARGS"].split(";"))
    assert args == {
        "IgnoreUnknown": "1",
        "K8S_POD_NAMESPACE": "cni-sysctl-e2e",
        "K8S_POD_NAME": "recorded",
        "K8S_POD_INFRA_CONTAINER_ID": pod.id,
        "K8S_POD_UID": args["K8S_POD_UID"],
    }
    assert env["CNI_IFNAME"] == "eth0"
    assert env["CNI_CONTAINERID"] == pod.id
    assert env["CNI_NETNS"] == pod.netns_path
    assert net.name == adds[0]["config"]["name"]
    # cni-sysctl, capability declared and nothing received for it, applied the conflist's value.
    assert pod.sysctl("net/ipv4/tcp_keepalive_time") == "600"
