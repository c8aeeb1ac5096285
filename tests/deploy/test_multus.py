"""Per-pod values through Multus: the example NetworkAttachmentDefinitions and pod
(deploy/kubernetes/examples/), turned into the exact delegate call Multus makes, run through our
libcni client against the DaemonSet's daemon (a pod of the node image, tests/deploy/conftest.py),
judged by the node's policy: none (the default set) or the one the ConfigMap installs.

What Multus (multus-cni v4, pkg/types/conf.go and pkg/k8sclient) does for a pod's network
selection `{"name": NAD, "cni-args": {...}}`, and `delegate()` below does the same:
- the delegate's config is the NAD's spec.config, with "name" set to the NAD's name when missing;
- cni-args go into EVERY plugin of the list as "args": {"cni": {...}}; into an "args.cni" a
  plugin already has, key by key, the pod's keys replacing the NAD's;
- the delegate runs with CNI_IFNAME "net1" for the first selection (the selection's
  "interface" when given), and CNI_ARGS "IgnoreUnknown=true;K8S_POD_NAMESPACE=...;K8S_POD_NAME=
  ...;K8S_POD_INFRA_CONTAINER_ID=...;K8S_POD_UID=...".
The only change made here: host-local gets a dataDir in the test's temp dir (tests/e2e Env),
so that no lease is written under the machine's /var/lib/cni.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import EXAMPLES, Node, load_documents
from tests.e2e.conftest import CniResult, Env

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NETWORKS = "k8s.v1.cni.cncf.io/networks"
POLICY = "/etc/cni/cni-sysctl.yaml"  # where the daemon reads the node's policy


def examples() -> dict[str, dict[str, Any]]:
    """The example objects by kind/name."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in load_documents(path):
            out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


def nad(name: str) -> dict[str, Any]:
    return examples()[f"NetworkAttachmentDefinition/{name}"]


def example_pod() -> dict[str, Any]:
    return examples()["Pod/sysctl-demo"]


def selections(pod: dict[str, Any]) -> list[dict[str, Any]]:
    value = json.loads(pod["metadata"]["annotations"][NETWORKS])
    assert isinstance(value, list)
    return value


def delegate(nad: dict[str, Any], selection: dict[str, Any]) -> dict[str, Any]:
    """The conflist Multus hands to libcni for `selection` of `nad` (module docstring)."""
    config: dict[str, Any] = json.loads(nad["spec"]["config"])
    if not config.get("name"):
        config["name"] = nad["metadata"]["name"]
    cni_args = selection.get("cni-args")
    if cni_args is not None:
        for plugin in config["plugins"]:
            args = plugin.get("args")
            if args is None:
                plugin["args"] = {"cni": copy.deepcopy(cni_args)}
            elif isinstance(args.get("cni"), dict):
                args["cni"].update(copy.deepcopy(cni_args))
            else:
                args["cni"] = copy.deepcopy(cni_args)
    return config


def pod_cni_args(pod: dict[str, Any]) -> str:
    """CNI_ARGS as Multus sets them for a delegate of `pod` (a sandbox id and uid of ours)."""
    meta = pod["metadata"]
    namespace = meta.get("namespace", "default")
    return (
        f"IgnoreUnknown=true;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={meta['name']};"
        f"K8S_POD_INFRA_CONTAINER_ID={uuid.uuid4().hex}{uuid.uuid4().hex};K8S_POD_UID={uuid.uuid4()}"
    )


class MultusPod:
    """A pod's network namespace on the node, attached the way the kubelet and Multus do it: the
    cluster network as eth0 (a plain bridge conflist, no cni-sysctl), then each selection of the
    pod's annotation as net1, net2, ... through its delegate."""

    def __init__(self, env: Env, pod: dict[str, Any], ns: str | None = None) -> None:
        self.env = env
        self.pod = pod
        self.ns = ns or env.new_container()
        self.cni_args = pod_cni_args(pod)
        cluster = env.conflist(
            [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.244.0.0/24"}], [{"subnet": "fd00:244::/64"}]],
                        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                    },
                }
            ],
            name="cluster",
        )
        env.attach(cluster, netns=env.netns_path(self.ns), cni_args=self.cni_args)
        self.delegates: list[tuple[str, str]] = []

    def attach(self, selection: dict[str, Any]) -> CniResult:
        """ADD of the delegate of `selection`, on the next netN."""
        config = delegate(nad(selection["name"]), selection)
        ifname = selection.get("interface") or f"net{len(self.delegates) + 1}"
        net = self.env.conflist(config["plugins"], config["cniVersion"], config["name"])
        self.delegates.append((net, ifname))
        return self.env.add(net, netns=self.env.netns_path(self.ns), ifname=ifname, cni_args=self.cni_args)

    def check(self) -> CniResult:
        net, ifname = self.delegates[-1]
        return self.env.check(net, netns=self.env.netns_path(self.ns), ifname=ifname, cni_args=self.cni_args)

    def delete(self) -> CniResult:
        net, ifname = self.delegates[-1]
        return self.env.delete(net, netns=self.env.netns_path(self.ns), ifname=ifname, cni_args=self.cni_args)

    def sysctl(self, path: str) -> str:
        return self.env.sysctl(path, ns=self.ns)


@pytest.fixture
def env(session_node: Node, make_netns: Callable[[str], str], tmp_path: Path, cnitool: str) -> Env:
    """A runtime's world on the node (tests/e2e Env) whose CNI bin dir is the one the
    DaemonSet's pod installed the shim into."""
    return Env(make_netns, tmp_path, cnitool, str(session_node.bin_dir))


def with_cni_args(selection: dict[str, Any], sysctl: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(selection)
    out["cni-args"] = {"sysctl": sysctl}
    return out


def test_the_delegate_config_is_the_nad_with_the_pods_cni_args_in_every_plugin() -> None:
    pod = example_pod()
    [selection] = selections(pod)
    config = delegate(nad(selection["name"]), selection)
    assert config["name"] == "bridge-sysctl"
    assert [p["type"] for p in config["plugins"]] == ["bridge", "cni-sysctl"]
    for plugin in config["plugins"]:
        assert plugin["args"] == {"cni": {"sysctl": ["net.ipv4.tcp_keepalive_time=300", "ipv6.conf.accept_ra=2"]}}
    # Into an args.cni the NAD already has, key by key: the pod's sysctl list replaces the NAD's.
    own = copy.deepcopy(nad("bridge-sysctl"))
    spec = json.loads(own["spec"]["config"])
    del spec["name"]
    spec["plugins"][1]["args"] = {"cni": {"sysctl": ["net.ipv4.tcp_fin_timeout=30"], "other": 1}}
    own["spec"]["config"] = json.dumps(spec)
    merged = delegate(own, selection)
    assert merged["name"] == "bridge-sysctl"
    assert merged["plugins"][1]["args"]["cni"] == {"sysctl": selection["cni-args"]["sysctl"], "other": 1}


def test_without_a_policy_file_the_default_set_judges_the_pods_values(env: Env, session_node: Node) -> None:
    session_node.set_policy(None)
    pod = example_pod()
    [selection] = selections(pod)

    # The example pod's values: accept_ra is per interface, never in the default set.
    first = MultusPod(env, pod)
    refused = first.attach(selection)
    assert refused.code == 100, refused.stderr
    assert refused.msg == (
        f"the built-in default set of Kubernetes' safe sysctls (no policy file at {POLICY}) refuses "
        "ipv6.conf.accept_ra='2' from args.cni.sysctl: no allow rule in the default set matches "
        "net.ipv6.conf.IFNAME.accept_ra (per-interface keys are never in the default set)"
    )
    # Nothing written, not even the NAD's own key or the pod's allowed one.
    assert first.sysctl("net/ipv4/conf/net1/rp_filter") == first.sysctl("net/ipv4/conf/default/rp_filter")
    assert first.sysctl("net/ipv4/tcp_keepalive_time") == "7200"

    # The default set's keepalive alone goes through, with the NAD's key (trusted: no policy file).
    second = MultusPod(env, pod)
    second.attach(with_cni_args(selection, ["net.ipv4.tcp_keepalive_time=300"])).result  # noqa: B018
    assert second.sysctl("net/ipv4/tcp_keepalive_time") == "300"
    assert second.sysctl("net/ipv4/conf/net1/rp_filter") == "2"
    assert second.sysctl("net/ipv4/conf/eth0/rp_filter") == second.sysctl("net/ipv4/conf/default/rp_filter")


def test_the_configmap_policy_allows_the_example_pod_on_its_net1_only(env: Env, session_node: Node) -> None:
    session_node.set_policy(session_node.policy_text)
    pod = example_pod()
    [selection] = selections(pod)
    multus = MultusPod(env, pod)
    default_accept_ra = multus.sysctl("net/ipv6/conf/default/accept_ra")

    result = multus.attach(selection).result
    assert [i["name"] for i in result["interfaces"] if i.get("sandbox")] == ["net1"]

    assert multus.sysctl("net/ipv6/conf/net1/accept_ra") == "2"  # the pod's, allowed by the policy
    assert multus.sysctl("net/ipv4/conf/net1/rp_filter") == "2"  # the NAD's, allowed (conflist: checked)
    assert multus.sysctl("net/ipv4/tcp_keepalive_time") == "300"  # the pod's, in the default set
    # eth0, the cluster network's, is not net1: untouched.
    assert multus.sysctl("net/ipv6/conf/eth0/accept_ra") == default_accept_ra
    assert multus.sysctl("net/ipv4/conf/eth0/rp_filter") == multus.sysctl("net/ipv4/conf/default/rp_filter")
    assert multus.check().rc == 0
    assert multus.delete().rc == 0


def test_the_configmap_policy_refuses_a_denied_key_and_a_value_outside_its_rule(env: Env, session_node: Node) -> None:
    session_node.set_policy(session_node.policy_text)
    pod = example_pod()
    [selection] = selections(pod)

    denied = MultusPod(env, pod).attach(with_cni_args(selection, ["ipv4.conf.proxy_arp=1"]))
    assert denied.code == 100, denied.stderr
    line = session_node.policy_text.splitlines().index("  - ipv4.conf.proxy_arp") + 1
    assert f"matches deny ipv4.conf.proxy_arp at {POLICY}:{line}" in denied.msg

    outside = MultusPod(env, pod)
    refused = outside.attach(with_cni_args(selection, ["ipv6.conf.accept_ra=3"]))
    assert refused.code == 100, refused.stderr
    assert "refuses ipv6.conf.accept_ra='3' from args.cni.sysctl: '3' is not one of 0, 1, 2" in refused.msg
    assert outside.sysctl("net/ipv6/conf/net1/accept_ra") == outside.sysctl("net/ipv6/conf/default/accept_ra")
    assert outside.sysctl("net/ipv4/conf/net1/rp_filter") == outside.sysctl("net/ipv4/conf/default/rp_filter")


def test_macvlan_nad_sets_its_values_before_link_up_and_a_pod_may_not_override_them(
    env: Env, session_node: Node
) -> None:
    session_node.set_policy(session_node.policy_text)
    # The node's second NIC, eth1: a veth in the node's (throwaway) netns, its peer the LAN.
    env.in_host("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "lan0")
    env.in_host("ip", "addr", "add", "10.78.0.1/24", "dev", "lan0")
    env.in_host("ip", "addr", "add", "fd00:78::1/64", "dev", "lan0", "nodad")
    env.in_host("ip", "link", "set", "lan0", "up")
    env.in_host("ip", "link", "set", "eth1", "up")
    pod = example_pod()

    plain = MultusPod(env, pod)
    result = plain.attach({"name": "macvlan-sysctl"}).result  # no cni-args: Multus adds no args
    assert plain.sysctl("net/ipv6/conf/net1/accept_ra") == "0"
    assert plain.sysctl("net/ipv6/conf/net1/autoconf") == "0"
    assert plain.sysctl("net/ipv4/conf/net1/rp_filter") == "2"
    # The bounce kept net1's addresses: the LAN answers on both families.
    assert env.addresses("net1", ns=plain.ns) == {str(ip["address"]) for ip in result["ips"]}
    assert env.ping("10.78.0.1", ns=plain.ns)
    assert env.ping("fd00:78::1", ns=plain.ns)

    # The example pod's values on this network: accept_ra would replace the NAD's 0, and the
    # policy's rule for it has no `override: true`.
    [selection] = selections(pod)
    override = MultusPod(env, pod)
    refused = override.attach({**selection, "name": "macvlan-sysctl"})
    assert refused.code == 100, refused.stderr
    assert "it overrides the conflist's value '0'" in refused.msg
    assert override.sysctl("net/ipv6/conf/net1/accept_ra") == override.sysctl("net/ipv6/conf/default/accept_ra")
    assert override.sysctl("net/ipv4/tcp_keepalive_time") == "7200"
