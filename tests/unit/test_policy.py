"""The policy: patterns, value rules, deny, conflist: checked, overrides, the default set, and the
errors ADD and STATUS give for each. Policy files are parsed with parse_policy (pure) where the
file itself does not matter; tests that read a file make it root-owned (they need root)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cni_sysctl.config import DEFAULT_POLICY, decode, parse_config
from cni_sysctl.errors import ErrorCode, PolicyDeniedError
from cni_sysctl.policy import Policy, default_policy, enforce, parse_policy
from cni_sysctl.policyfile import PolicyFileError
from cni_sysctl.policyrules import PatternError, parse_pattern, pattern_matches

REPO = Path(__file__).resolve().parents[2]
PATH = "/etc/cni/test-policy.yaml"  # only a name in messages: parse_policy reads no file

POLICY = """\
allow:
  - ipv6.conf.accept_ra
  - key: net.ipv4.tcp_keepalive_*
    range: [60, 7200]
  - key: ipv4.conf.rp_filter
    values: [0, 1, "2"]
"""


def config(
    sysctl: object = None, args: object = None, runtime: object = None, policy: str | None = None
) -> dict[str, object]:
    obj: dict[str, object] = {"cniVersion": "1.0.0", "name": "n", "type": "cni-sysctl"}
    if sysctl is not None:
        obj["sysctl"] = sysctl
    if args is not None:
        obj["args"] = {"cni": {"sysctl": args}}
    if runtime is not None:
        obj["runtimeConfig"] = {"sysctl": runtime}
    if policy is not None:
        obj["policy"] = policy
    return decode(json.dumps(obj).encode())


def judge(policy: Policy, **kw: object) -> list[tuple[str, bool, str]]:
    c = parse_config(config(**kw))  # type: ignore[arg-type]
    return [(v.entry.key.text, v.allowed, v.reason) for v in policy.judge_all(c)]


def allowed(policy: Policy, **kw: object) -> list[bool]:
    return [ok for _, ok, _ in judge(policy, **kw)]


def pol(text: str) -> Policy:
    return parse_policy(text.encode(), PATH)


# -- patterns --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        # '*' never crosses a separator
        ("net.ipv4.*", "net.ipv4.tcp_syncookies", True),
        ("net.ipv4.*", "net.ipv4.conf.all.forwarding", False),
        ("net.ipv4.*", "net.ipv4.conf.IFNAME.forwarding", False),
        ("net.*.*", "net.core.somaxconn", True),
        ("net.*.*", "net.ipv6.conf.all.forwarding", False),
        ("net.ipv4.tcp_keepalive_*", "net.ipv4.tcp_keepalive_time", True),
        ("net.ipv4.tcp_?eepalive_time", "net.ipv4.tcp_keepalive_time", True),
        ("net.ipv4.tcp_keepalive_*", "net.ipv4.tcp_fin_timeout", False),
        # the device slot: IFNAME and * are the container's interfaces, never all/default/lo
        ("net.ipv6.conf.*.accept_ra", "net.ipv6.conf.IFNAME.accept_ra", True),
        ("net.ipv6.conf.*.accept_ra", "net.ipv6.conf.all.accept_ra", False),
        ("net.ipv6.conf.*.accept_ra", "net.ipv6.conf.default.accept_ra", False),
        ("net.ipv6.conf.*.accept_ra", "net.ipv6.conf.lo.accept_ra", False),
        ("net.ipv6.conf.IFNAME.accept_ra", "net.ipv6.conf.all.accept_ra", False),
        ("ipv6.conf.accept_ra", "net.ipv6.conf.IFNAME.accept_ra", True),
        ("ipv6.conf.accept_ra", "net.ipv6.conf.default.accept_ra", False),
        ("net.ipv6.conf.all.accept_ra", "net.ipv6.conf.all.accept_ra", True),
        ("net.ipv6.conf.all.accept_ra", "net.ipv6.conf.IFNAME.accept_ra", False),
        ("net.*.conf.IFNAME.*", "net.ipv4.conf.IFNAME.rp_filter", True),
        ("net.*.*.*.*", "net.ipv4.conf.all.rp_filter", False),
        ("net.*.*.all.*", "net.ipv4.conf.all.rp_filter", True),
        ("net/ipv4/conf/IFNAME/rp_filter", "ipv4.conf.rp_filter", True),
    ],
)
def test_patterns_match_per_component(pattern: str, key: str, matches: bool) -> None:
    from cni_sysctl.keys import parse_key

    assert pattern_matches(parse_pattern(pattern), parse_key(key).parts) is matches


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("net.ipv4.conf.eth0.rp_filter", "never name a concrete interface"),
        ("net.ipv4.conf.eth*.rp_filter", "never name a concrete interface"),
        ("net.ipv4.conf.*", "five components"),
        ("net.ipv6.conf.all.accept_ra.x", "five components"),
        ("ipv4.conf", "short form"),
        ("kernel.*", "start with 'net.'"),
        ("*.ipv4.tcp_syncookies", "start with 'net.'"),
        ("/proc/sys/net/core/somaxconn", "relative to /proc/sys"),
        ("net..core", "empty component"),
        ("net.core.[s]omaxconn", "character '['"),
        ("net.core", "directory"),
        ("net.*", "directory"),
        ("", "non-empty"),
    ],
)
def test_invalid_patterns(pattern: str, why: str) -> None:
    with pytest.raises(PatternError, match=re.escape(why)):
        parse_pattern(pattern)


def test_invalid_pattern_in_a_file_names_the_line() -> None:
    with pytest.raises(PolicyFileError) as info:
        pol("allow:\n  - net.core.somaxconn\n  - key: net.ipv4.conf.eth0.rp_filter\n")
    assert info.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert f"{PATH}:3 is invalid: key pattern 'net.ipv4.conf.eth0.rp_filter'" in info.value.msg


# -- value rules ------------------------------------------------------------------------------


def test_values_range_and_max_fields() -> None:
    p = pol(
        "allow:\n"
        "  - key: net.ipv4.ip_local_port_range\n    range: [1024, 65535]\n    max_fields: 2\n"
        "  - key: ipv4.conf.rp_filter\n    values: [0, 1, '2']\n"
    )
    assert allowed(
        p,
        args=[
            "net.ipv4.ip_local_port_range=32768 60999",
            "ipv4.conf.rp_filter=2",
        ],
    ) == [True, True]
    verdicts = judge(
        p,
        args=[
            "net.ipv4.ip_local_port_range=1000 60999",  # every field is in range
            "ipv4.conf.rp_filter=3",
        ],
        runtime=["net.ipv4.ip_local_port_range=32768 60999 61000"],  # max_fields
    )
    assert [ok for _, ok, _ in verdicts] == [False, False, False]
    assert "1000 is outside [1024, 65535]" in verdicts[0][2]
    assert f"rule: allow net.ipv4.ip_local_port_range (range [1024, 65535], max_fields 2) at {PATH}:2" in verdicts[0][2]
    assert "'3' is not one of 0, 1, 2" in verdicts[1][2]
    assert "has 3 fields, at most 2 allowed" in verdicts[2][2]


def test_values_compare_as_the_kernel_reads_them() -> None:
    p = pol(
        "allow:\n  - key: net.core.somaxconn\n    values: [0x10]\n  - key: net.core.busy_read\n    range: [1, 16]\n"
    )
    assert allowed(p, args=["net.core.somaxconn=16", "net.core.busy_read=0x10"]) == [True, True]
    assert allowed(p, args=["net.core.busy_read=0x11"]) == [False]


def test_range_rejects_non_integers() -> None:
    p = pol("allow: [{key: net.core.somaxconn, range: [1, 10]}]")
    [(_, ok, why)] = judge(p, args=["net.core.somaxconn=abc"])
    assert not ok
    assert "'abc' is not an integer in [1, 10]" in why


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("- a", 1, "top level must be a mapping"),
        ("allow: []\ncolour: red\n", 2, "unknown top-level key 'colour'"),
        ("conflist: maybe\n", 1, "conflist must be trusted or checked"),
        ("include: everything\n", 1, "include must be 'default'"),
        ("allow: net.core.somaxconn\n", 1, "'allow' must be a list"),
        ("allow:\n  - 5\n", 2, "must be a key pattern or a mapping"),
        ("allow:\n  - values: ['1']\n", 2, "'key' (a key pattern) is required"),
        ("allow:\n  - key: net.core.somaxconn\n    colour: red\n", 3, "unknown field 'colour'"),
        ("deny:\n  - key: net.core.somaxconn\n    values: [1]\n", 3, "unknown field 'values'"),
        ("allow:\n  - key: net.core.somaxconn\n    values: []\n", 3, "non-empty list of scalars"),
        ("allow:\n  - key: net.core.somaxconn\n    values: 1\n", 3, "non-empty list of scalars"),
        ("allow:\n  - key: net.core.somaxconn\n    values: [[1]]\n", 3, "write integers or strings"),
        ("allow:\n  - key: net.core.somaxconn\n    values: [yes]\n", 3, "quote yes/no/on/off"),
        ("allow:\n  - key: net.core.somaxconn\n    values: [~]\n", 3, "write integers or strings"),
        ("allow:\n  - key: net.core.somaxconn\n    range: [5, 1]\n", 3, "min <= max"),
        ("allow:\n  - key: net.core.somaxconn\n    range: [1]\n", 3, "range must be [min, max]"),
        ("allow:\n  - key: net.core.somaxconn\n    range: ['1', 2]\n", 3, "two integers"),
        ("allow:\n  - key: net.core.somaxconn\n    max_fields: 0\n", 3, "positive integer"),
        ("allow:\n  - key: net.core.somaxconn\n    override: 1\n", 3, "true or false"),
    ],
)
def test_invalid_policies_name_file_and_line(text: str, line: int, why: str) -> None:
    with pytest.raises(PolicyFileError) as info:
        pol(text)
    assert info.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert f"policy file {PATH}:{line} is invalid" in info.value.msg
    assert why in info.value.msg


@pytest.mark.parametrize(
    "text",
    [
        "conflist: {secret}\n",
        "{secret}: 1\n",
        "allow: [{secret}]\n",
        "allow:\n  - key: net.core.x\n    values: [[{secret}]]\n",
    ],
)
def test_messages_quote_the_file_sparingly(text: str) -> None:
    """A conflist may name any root-owned file as its policy: errors must not copy it out."""
    secret = "s3cr3t-" + "0123456789abcdef" * 4
    with pytest.raises(PolicyFileError) as info:
        pol(text.format(secret=secret))
    assert secret not in info.value.msg
    assert "s3cr3t-" in info.value.msg  # a prefix says where the problem is


def test_empty_file_allows_nothing_and_trusts_the_conflist() -> None:
    p = pol("")
    assert allowed(p, sysctl=["net.core.somaxconn=1"], args=["net.core.somaxconn=1"]) == [True, False]


# -- deny, conflist: checked, overrides ------------------------------------------------------


def test_deny_wins_over_allow_for_every_source() -> None:
    p = pol("allow: [net.ipv4.conf.IFNAME.*]\ndeny:\n  - ipv4.conf.proxy_arp\n")
    verdicts = judge(
        p,
        sysctl=["ipv4.conf.proxy_arp=1"],  # conflist: trusted, yet denied
        args=["ipv4.conf.arp_ignore=1"],
        runtime=["net.ipv4.conf.IFNAME.proxy_arp=1"],
    )
    assert [ok for _, ok, _ in verdicts] == [False, True, False]
    assert verdicts[0][2] == f"matches deny ipv4.conf.proxy_arp at {PATH}:3"


def test_conflist_checked_needs_an_allow_rule() -> None:
    p = pol("conflist: checked\nallow: [net.ipv4.tcp_keepalive_time]\n")
    verdicts = judge(p, sysctl=["net.ipv4.tcp_keepalive_time=600", "ipv4.conf.proxy_arp=1"])
    assert [ok for _, ok, _ in verdicts] == [True, False]
    assert "no allow rule in /etc/cni/test-policy.yaml matches net.ipv4.conf.IFNAME.proxy_arp" in verdicts[1][2]


def test_conflist_trusted_is_the_default() -> None:
    assert pol("allow: []").conflist == "trusted"
    assert allowed(pol("allow: []"), sysctl=["ipv4.conf.proxy_arp=1"]) == [True]


def test_override_of_a_conflist_key_needs_override_true() -> None:
    plain = pol("allow: [{key: net.ipv4.tcp_keepalive_time, range: [60, 7200]}]")
    verdicts = judge(plain, sysctl=["net.ipv4.tcp_keepalive_time=600"], args=["net.ipv4.tcp_keepalive_time=300"])
    assert [ok for _, ok, _ in verdicts] == [True, False]
    assert "it overrides the conflist's value '600'" in verdicts[1][2]
    assert "override: true" in verdicts[1][2]
    # the same rule needs no override when the conflist does not set the key
    assert allowed(plain, args=["net.ipv4.tcp_keepalive_time=300"]) == [True]
    explicit = pol("allow: [{key: net.ipv4.tcp_keepalive_time, range: [60, 7200], override: true}]")
    assert allowed(
        explicit, sysctl=["net.ipv4.tcp_keepalive_time=600"], runtime=["net.ipv4.tcp_keepalive_time=300"]
    ) == [
        True,
        True,
    ]


def test_override_is_per_key_in_any_spelling() -> None:
    p = pol("allow: [ipv6.conf.accept_ra]")
    verdicts = judge(p, sysctl=["net.ipv6.conf.IFNAME.accept_ra=2"], args=["ipv6.conf.accept_ra=0"])
    assert [ok for _, ok, _ in verdicts] == [True, False]
    # a netns-wide key of the same parameter is another sysctl: no override
    assert allowed(
        pol("allow: [net.ipv6.conf.all.accept_ra]"),
        sysctl=["ipv6.conf.accept_ra=2"],
        args=["net.ipv6.conf.all.accept_ra=0"],
    ) == [True, True]


# -- the default set -------------------------------------------------------------------------

SAFE = [
    "net.ipv4.ip_local_port_range=32768 60999",
    "net.ipv4.tcp_syncookies=1",
    "net.ipv4.ping_group_range=0 2147483647",
    "net.ipv4.ip_unprivileged_port_start=80",
    "net.ipv4.ip_local_reserved_ports=8080,9000-9010",
    "net.ipv4.tcp_keepalive_time=600",
    "net.ipv4.tcp_fin_timeout=30",
    "net.ipv4.tcp_keepalive_intvl=30",
    "net.ipv4.tcp_keepalive_probes=5",
    "net.ipv4.tcp_rmem=4096 131072 6291456",
    "net.ipv4.tcp_wmem=4096 16384 4194304",
]


def test_default_set_allows_the_kubernetes_safe_sysctls() -> None:
    p = default_policy("/nowhere/cni-sysctl.yaml")
    assert allowed(p, args=SAFE[:6], runtime=SAFE[6:]) == [True] * len(SAFE)


@pytest.mark.parametrize(
    "item",
    [
        "net.ipv4.ip_local_port_range=1000 60999",
        "net.ipv4.tcp_syncookies=3",
        "net.ipv4.ip_unprivileged_port_start=70000",
        "net.ipv4.tcp_keepalive_time=0",
        "net.ipv4.tcp_keepalive_time=-5",
        "net.ipv4.tcp_fin_timeout=121",
        "net.ipv4.tcp_keepalive_intvl=0",
        "net.ipv4.tcp_keepalive_probes=128",
        "net.ipv4.tcp_rmem=4096 131072 2147483647",
        "net.ipv4.tcp_wmem=1 1 1",
        "net.ipv4.ip_local_reserved_ports=8080, 9000",
    ],
)
def test_default_set_bounds_harmful_values(item: str) -> None:
    assert allowed(default_policy("/nowhere/p.yaml"), args=[item]) == [False]


@pytest.mark.parametrize(
    "item",
    [
        "ipv6.conf.accept_ra=0",
        "ipv4.conf.proxy_arp=1",
        "net.ipv4.conf.IFNAME.forwarding=1",
        "net.ipv4.conf.all.forwarding=1",
        "net.ipv6.conf.default.disable_ipv6=1",
        "net.core.somaxconn=1024",
        "net.ipv4.tcp_max_syn_backlog=10",
    ],
)
def test_default_set_refuses_everything_else(item: str) -> None:
    [(_, ok, why)] = judge(default_policy("/nowhere/p.yaml"), runtime=[item])
    assert not ok
    assert "no allow rule in the default set matches" in why


def test_default_set_trusts_the_conflist() -> None:
    assert allowed(default_policy("/nowhere/p.yaml"), sysctl=["ipv4.conf.proxy_arp=1"]) == [True]


def test_policy_file_replaces_the_default_set_or_includes_it() -> None:
    replacing = pol("allow: [ipv6.conf.accept_ra]")
    assert allowed(replacing, args=["net.ipv4.tcp_keepalive_time=600", "ipv6.conf.accept_ra=0"]) == [False, True]
    including = pol("include: default\nallow: [ipv6.conf.accept_ra]")
    assert allowed(including, args=["net.ipv4.tcp_keepalive_time=600", "ipv6.conf.accept_ra=0"]) == [True, True]
    # the default set's bounds come along
    assert allowed(including, args=["net.ipv4.tcp_keepalive_time=0"]) == [False]


# -- enforce: what ADD raises ----------------------------------------------------------------


def write_policy(directory: Path, text: str, mode: int = 0o644) -> str:
    p = directory / "cni-sysctl.yaml"
    p.write_text(text)
    os.chown(p, 0, 0)
    os.chmod(p, mode)
    return str(p)


def test_no_policy_file_denial_names_key_source_and_default_set(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.yaml")
    with pytest.raises(PolicyDeniedError) as info:
        enforce(parse_config(config(args=["ipv6.conf.accept_ra=0"], policy=missing)))
    err = info.value
    assert err.code == ErrorCode.POLICY_DENIED
    assert err.msg == (
        f"the built-in default set of Kubernetes' safe sysctls (no policy file at {missing}) refuses "
        "ipv6.conf.accept_ra='0' from args.cni.sysctl: no allow rule in the default set matches "
        "net.ipv6.conf.IFNAME.accept_ra (per-interface keys are never in the default set)"
    )
    assert f"the node administrator can allow more in {missing}" in err.details


def test_no_policy_file_allows_safe_keys(tmp_path: Path) -> None:
    c = parse_config(config(args=SAFE, policy=str(tmp_path / "none.yaml")))
    assert all(v.allowed for v in enforce(c))


def test_denial_lists_every_refused_key(root: None, tmp_path: Path) -> None:
    path = write_policy(tmp_path, "conflist: checked\nallow: [net.core.somaxconn]\ndeny: [ipv4.conf.proxy_arp]\n")
    c = parse_config(
        config(
            sysctl=["ipv4.conf.proxy_arp=1", "net.core.somaxconn=10"],
            runtime=["net.ipv4.tcp_keepalive_time=600"],
            policy=path,
        )
    )
    with pytest.raises(PolicyDeniedError) as info:
        enforce(c)
    assert info.value.msg == (
        f"policy {path} refuses ipv4.conf.proxy_arp='1' from the conflist (sysctl): matches deny "
        f"ipv4.conf.proxy_arp at {path}:3; net.ipv4.tcp_keepalive_time='600' from runtimeConfig.sysctl: "
        f"no allow rule in {path} matches net.ipv4.tcp_keepalive_time"
    )
    assert "bind conflist keys too" in info.value.details


def test_untrusted_policy_file_is_code_7_at_add(root: None, tmp_path: Path) -> None:
    path = write_policy(tmp_path, "allow: [net.core.somaxconn]\n", mode=0o666)
    with pytest.raises(PolicyFileError) as info:
        enforce(parse_config(config(args=["net.core.somaxconn=10"], policy=path)))
    assert info.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert f"policy file {path} is not trusted: it is writable by group and others" in info.value.msg


def test_node_policy_checked_binds_conflists_naming_another_policy(root: None, tmp_path: Path) -> None:
    """With /etc/cni/cni-sysctl.yaml saying `conflist: checked`, a conflist (a NetworkAttachment-
    Definition) cannot escape it by naming another policy file, or a missing one. Run through
    the CLI in a private mount namespace whose /etc/cni is a test directory: the machine's
    /etc/cni is never touched."""
    etc_cni = tmp_path / "etc-cni"
    etc_cni.mkdir(mode=0o755)
    write_policy(etc_cni, "conflist: checked\nallow: [net.core.somaxconn]\n")
    own = tmp_path / "own"
    own.mkdir(mode=0o755)
    own_policy = write_policy(own, "allow: ['net.ipv4.conf.IFNAME.*']\n")
    assert os.path.dirname(DEFAULT_POLICY) == "/etc/cni"

    def add(conf: dict[str, object]) -> dict[str, object]:
        env = {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "c1",
            "CNI_NETNS": "/var/run/netns/cni-sysctl-does-not-exist",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin",
            "PATH": os.environ["PATH"],
        }
        script = 'mount --make-rprivate / && mount --bind "$0" /etc/cni && exec "$@"'
        proc = subprocess.run(
            ["unshare", "--mount", "sh", "-c", script, str(etc_cni), sys.executable, "-m", "cni_sysctl"],
            input=json.dumps(conf),
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    base: dict[str, object] = {
        "cniVersion": "1.0.0",
        "name": "n",
        "type": "cni-sysctl",
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}], "ips": []},
    }
    for chosen in (own_policy, str(tmp_path / "absent.yaml"), "/etc/cni/./cni-sysctl.yaml"):
        err = add(dict(base, policy=chosen, sysctl=["ipv4.conf.proxy_arp=1"]))
        assert err["code"] == 100
        assert f"the conflist names the policy file {chosen}" in str(err["msg"])
        assert "conflist: checked" in str(err["msg"])
    # without a "policy" field the node policy judges the conflist's keys
    err = add(dict(base, sysctl=["ipv4.conf.proxy_arp=1"]))
    assert err["code"] == 100
    assert "policy /etc/cni/cni-sysctl.yaml refuses ipv4.conf.proxy_arp='1' from the conflist" in str(err["msg"])
    # and what it allows goes on to the netns (which does not exist: 3)
    assert add(dict(base, sysctl=["net.core.somaxconn=10"]))["code"] == 3
