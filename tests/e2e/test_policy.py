"""The policy through libcni (our cnitool): the default set without a policy file, deny and
`conflist: checked` binding the conflist's own keys, overrides, a tampered policy file, and
`explain` naming the rule for every key. Values are read back inside the container netns.

Per-attachment sysctls arrive the way Multus and the runtimes send them: `args.cni.sysctl` in
the plugin's config (a network selection's cni-args) and `runtimeConfig.sysctl` (CAP_ARGS, for
a plugin declaring the "sysctl" capability). Every test names its policy file explicitly (one in
its tmp dir, present or not), so nothing depends on /etc/cni/cni-sysctl.yaml.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Env, load_conflist, plugin_of
from tests.netlab import OPERATOR

pytestmark = pytest.mark.e2e

K8S_ARGS = "IgnoreUnknown=1;K8S_POD_NAMESPACE=tenant-a;K8S_POD_NAME=web-0"


def write_policy(env: Env, text: str, mode: int = 0o644) -> str:
    """A policy file as a node administrator writes it: root's, 0644, in a root-owned directory."""
    directory = env.tmp / "etc-cni"
    directory.mkdir(mode=0o755, exist_ok=True)
    path = directory / "cni-sysctl.yaml"
    path.write_text(text)
    os.chown(path, 0, 0)
    os.chmod(path, mode)
    return str(path)


def network(
    env: Env,
    *,
    sysctl: list[str] | None = None,
    args: list[str] | None = None,
    policy: str | None = None,
    capability: bool = False,
) -> str:
    """The shipped bridge conflist, with cni-sysctl configured as given."""
    doc = load_conflist("sysctl-bridge")
    ours: dict[str, Any] = plugin_of(doc, "cni-sysctl")
    ours["sysctl"] = sysctl or []
    ours["policy"] = policy or str(env.tmp / "no-policy-here.yaml")
    if args is not None:
        ours["args"] = {"cni": {"sysctl": args}}
    if capability:
        ours["capabilities"] = {"sysctl": True}
    return env.conflist(doc["plugins"])


def test_safe_key_from_args_without_policy_file_is_applied(env: Env) -> None:
    assert env.sysctl("net/ipv4/tcp_keepalive_time") == "7200"
    net = network(
        env,
        args=["net.ipv4.tcp_keepalive_time=600", "net.ipv4.ip_local_port_range=20000 40000"],
        capability=True,
    )
    env.attach(net, cni_args=K8S_ARGS, cap_args={"sysctl": ["net.ipv4.tcp_syncookies=2"]})
    assert env.sysctl("net/ipv4/tcp_keepalive_time") == "600"
    assert env.sysctl("net/ipv4/ip_local_port_range").split() == ["20000", "40000"]
    assert env.sysctl("net/ipv4/tcp_syncookies") == "2"
    assert env.check(net, cni_args=K8S_ARGS, cap_args={"sysctl": ["net.ipv4.tcp_syncookies=2"]}).rc == 0


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("ipv6.conf.accept_ra=0", ["ipv6.conf.accept_ra", "per-interface keys are never in the default set"]),
        ("net.ipv4.conf.IFNAME.proxy_arp=1", ["net.ipv4.conf.IFNAME.proxy_arp", "no allow rule in the default set"]),
        ("net.ipv4.tcp_keepalive_time=0", ["net.ipv4.tcp_keepalive_time", "0 is outside [1, 32767]"]),
    ],
)
def test_key_outside_the_default_set_is_refused_without_policy_file(env: Env, item: str, words: list[str]) -> None:
    before = {p: env.sysctl(p) for p in ("net/ipv6/conf/default/accept_ra", "net/ipv4/tcp_keepalive_time")}
    net = network(env, sysctl=["net.core.somaxconn=1000"], args=[item])
    refused = env.add(net, cni_args=K8S_ARGS)
    assert refused.code == 100, refused.stderr
    assert "the built-in default set of Kubernetes' safe sysctls" in refused.msg
    assert f"no policy file at {env.tmp / 'no-policy-here.yaml'}" in refused.msg
    assert "from args.cni.sysctl" in refused.msg
    for word in words:
        assert word in refused.msg
    # nothing written, not even the conflist's own key
    assert env.sysctl("net/core/somaxconn") != "1000"
    assert env.sysctl("net/ipv6/conf/eth0/accept_ra") == before["net/ipv6/conf/default/accept_ra"]
    assert env.sysctl("net/ipv4/conf/eth0/proxy_arp") == "0"
    assert env.sysctl("net/ipv4/tcp_keepalive_time") == before["net/ipv4/tcp_keepalive_time"]


def test_conflist_key_denied_under_conflist_checked_is_refused_and_nothing_written(env: Env) -> None:
    policy = write_policy(
        env,
        "# namespace admins write NetworkAttachmentDefinitions here\n"
        "conflist: checked\n"
        "allow:\n"
        "  - net.ipv4.tcp_keepalive_time\n"
        "  - ipv6.conf.accept_ra\n",
    )
    net = network(env, sysctl=["net.ipv4.tcp_keepalive_time=600", "ipv4.conf.proxy_arp=1"], policy=policy)
    refused = env.add(net)
    assert refused.code == 100, refused.stderr
    assert refused.msg == (
        f"policy {policy} refuses ipv4.conf.proxy_arp='1' from the conflist (sysctl): "
        f"no allow rule in {policy} matches net.ipv4.conf.IFNAME.proxy_arp"
    )
    assert env.sysctl("net/ipv4/conf/eth0/proxy_arp") == "0"
    assert env.sysctl("net/ipv4/tcp_keepalive_time") == "7200"  # the allowed key was not written either
    # what the policy allows goes through
    allowed = network(env, sysctl=["net.ipv4.tcp_keepalive_time=600", "ipv6.conf.accept_ra=0"], policy=policy)
    env.attach(allowed, netns=env.netns_path(second := env.new_container()))
    assert env.sysctl("net/ipv4/tcp_keepalive_time", ns=second) == "600"
    assert env.sysctl("net/ipv6/conf/eth0/accept_ra", ns=second) == "0"


def test_deny_binds_a_trusted_conflist_too(env: Env) -> None:
    policy = write_policy(env, "deny:\n  - net.ipv4.conf.IFNAME.proxy_arp\n")
    refused = env.add(network(env, sysctl=["net.ipv4.tcp_keepalive_time=600", "ipv4.conf.proxy_arp=1"], policy=policy))
    assert refused.code == 100, refused.stderr
    assert f"matches deny net.ipv4.conf.IFNAME.proxy_arp at {policy}:2" in refused.msg
    assert env.sysctl("net/ipv4/tcp_keepalive_time") == "7200"


def test_override_of_a_conflist_value_needs_override_true(env: Env) -> None:
    conflist = ["net.ipv4.tcp_keepalive_time=600"]
    plain = write_policy(env, "allow:\n  - key: net.ipv4.tcp_keepalive_time\n    range: [60, 7200]\n")
    refused = env.add(network(env, sysctl=conflist, args=["net.ipv4.tcp_keepalive_time=300"], policy=plain))
    assert refused.code == 100, refused.stderr
    assert "it overrides the conflist's value '600'" in refused.msg
    assert env.sysctl("net/ipv4/tcp_keepalive_time") == "7200"

    explicit = write_policy(
        env, "allow:\n  - key: net.ipv4.tcp_keepalive_time\n    range: [60, 7200]\n    override: true\n"
    )
    net = network(env, sysctl=conflist, args=["net.ipv4.tcp_keepalive_time=300"], policy=explicit, capability=True)
    cap = {"sysctl": ["net.ipv4.tcp_keepalive_time=200"]}
    second = env.netns_path(env.new_container())  # the refused ADD left bridge's eth0 in the first
    env.attach(net, netns=second, cap_args=cap)
    # conflist, then args.cni, then runtimeConfig: the last one is what the netns holds
    assert env.sysctl("net/ipv4/tcp_keepalive_time", ns=os.path.basename(second)) == "200"
    check = env.check(net, netns=second, cap_args=cap)
    assert check.rc == 0, check.stderr


def test_world_writable_policy_is_refused(env: Env) -> None:
    policy = write_policy(env, "allow: [net.ipv4.tcp_keepalive_time]\n", mode=0o666)
    refused = env.add(network(env, args=["net.ipv4.tcp_keepalive_time=600"], policy=policy))
    assert refused.code == 7, refused.stderr
    assert refused.msg == f"policy file {policy} is not trusted: it is writable by group and others (mode 0666)"
    assert "chmod go-w" in refused.text
    assert env.sysctl("net/ipv4/tcp_keepalive_time") == "7200"


def test_foreign_owned_policy_is_refused(env: Env) -> None:
    policy = write_policy(env, "allow: [net.ipv4.tcp_keepalive_time]\n")
    os.chown(policy, 65534, 65534)
    refused = env.add(network(env, sysctl=["net.ipv4.tcp_keepalive_time=600"], policy=policy))
    assert refused.code == 7, refused.stderr
    assert f"policy file {policy} is not trusted: it is owned by uid 65534" in refused.msg
    assert env.sysctl("net/ipv4/tcp_keepalive_time") == "7200"


def test_explain_names_the_rule_for_each_key(env: Env) -> None:
    policy = write_policy(
        env,
        "include: default\n"
        "allow:\n"
        "  - key: ipv4.conf.rp_filter\n"
        "    values: [0, 1, 2]\n"
        "deny:\n"
        "  - ipv4.conf.proxy_arp\n",
    )
    net = network(env, sysctl=["net.ipv4.tcp_keepalive_time=600"], policy=policy)
    conflist = env.netconf / f"{net}.conflist"
    explain = subprocess.run(
        [
            *OPERATOR,
            "explain",
            str(conflist),
            "--args",
            '{"sysctl": ["ipv4.conf.rp_filter=1", "net.ipv4.tcp_fin_timeout=30"]}',
            "--runtime-config",
            '{"sysctl": ["ipv4.conf.proxy_arp=1"]}',
            "--policy",
            policy,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert explain.returncode == 1, explain.stderr  # proxy_arp: ADD would fail
    lines = explain.stdout.splitlines()
    verdicts = [line.strip() for line in lines if line.startswith("  policy: ")]
    assert verdicts == [
        "policy: allowed: conflist keys are trusted (conflist: trusted), no deny rule matches",
        f"policy: allowed by allow ipv4.conf.rp_filter (values 0, 1, 2) at {policy}:3",
        "policy: allowed by allow net.ipv4.tcp_fin_timeout (range [1, 120], max_fields 1) in the default set "
        "[Kubernetes 1.29, kernel 4.6; 120 s is the kernel's cap for TCP_LINGER2]",
        f"policy: DENIED: matches deny ipv4.conf.proxy_arp at {policy}:6",
    ]
    assert "  net.ipv4.conf.eth0.rp_filter = 1   [no bounce]" in lines
    assert "ADD would fail:" in lines
    # and ADD agrees
    refused = env.add(network(env, args=["ipv4.conf.proxy_arp=1"], policy=policy))
    assert refused.code == 100
    assert f"matches deny ipv4.conf.proxy_arp at {policy}:6" in refused.msg


def test_policy_check_as_an_operator_runs_it(env: Env) -> None:
    policy = write_policy(env, "conflist: checked\nallow: [net.ipv4.tcp_keepalive_time]\n")
    ok = subprocess.run([*OPERATOR, "policy", "check", policy], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{policy}: trusted and valid\n  conflist: checked\n")
    Path(policy).chmod(0o664)
    bad = subprocess.run([*OPERATOR, "policy", "check", policy], capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "is not trusted: it is writable by group (mode 0664)" in bad.stderr
