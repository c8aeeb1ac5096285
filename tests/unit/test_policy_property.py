"""Properties of the policy, over generated policies and keys:

1. no pattern ever allows a key with a different number of components than the pattern (in
   IFNAME form: a short pattern or key stands for its five components);
2. a wildcard or IFNAME never allows all, default or lo in the device slot;
3. without a policy file, no untrusted key outside the kubelet's safe list ever gets past the
   policy: an ADD into a netns that does not exist fails with 3 only after the policy allowed
   every key, so any other outcome than 100 or 7 for such a key would be a leak.
"""

from __future__ import annotations

import io
import json

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from cni_sysctl.cli import main
from cni_sysctl.config import decode, parse_config
from cni_sysctl.errors import CniError
from cni_sysctl.keys import FAMILIES, TABLES, parse_key
from cni_sysctl.policy import parse_policy
from cni_sysctl.policyrules import PatternError, parse_pattern

# The kubelet's safe net.* sysctls (Kubernetes docs, "Using sysctls in a Kubernetes Cluster"),
# written out here independently of cni_sysctl's own list.
KUBELET_SAFE = {
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
}
WORDS = [
    "net",
    "ipv4",
    "ipv6",
    "conf",
    "neigh",
    "core",
    "IFNAME",
    "all",
    "default",
    "lo",
    "rp_filter",
    "accept_ra",
    "forwarding",
    "somaxconn",
    "tcp_keepalive_time",
    "tcp_syncookies",
    "ip_local_port_range",
    "tcp_rmem",
]
PATTERN_WORDS = [*WORDS, "*", "?", "*_*", "tcp_*", "a*", "*l*", "?ll", "de*", "l?", "IF*"]
VALUES = ["0", "1", "2", "3", "-1", "600", "0x10", "abc", "32768 60999", "1000 2000", "4096 131072 6291456", "8080"]


def joined(words: list[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda head, rest, sep: sep.join([head, *rest]),
        st.sampled_from(["net", "net", "net", "ipv4", "ipv6"]),
        st.lists(st.sampled_from(words), min_size=1, max_size=5),
        st.sampled_from([".", ".", "/"]),
    )


def expanded_len(text: str) -> int:
    """Components of a key or pattern in IFNAME form (a short form stands for five)."""
    parts = text.split("/") if "/" in text else text.split(".")
    if parts[0] in FAMILIES and len(parts) == 3 and parts[1] in TABLES:
        return 5
    return len(parts)


def blur(component: str, how: int) -> str:
    """A pattern component that may or may not match `component`."""
    return [component, "*", "?" * len(component), component[:2] + "*", "*" + component[-1:], "IFNAME", "x*"][how]


@st.composite
def pattern_and_key(draw: st.DrawFn) -> tuple[str, str]:
    """Mostly a key and a pattern made from it (some components blurred into wildcards, now and
    then one component added or dropped), so that matches and near misses are both common."""
    key = draw(joined(WORDS))
    sep = "/" if "/" in key else "."
    parts = key.split(sep)
    blurred = [blur(p, draw(st.integers(0, 6))) if draw(st.booleans()) else p for p in parts]
    change = draw(st.sampled_from(["same", "same", "same", "add", "drop"]))
    if change == "add":
        blurred.insert(draw(st.integers(1, len(blurred))), draw(st.sampled_from(["*", "conf", "all"])))
    elif change == "drop" and len(blurred) > 1:
        del blurred[draw(st.integers(1, len(blurred) - 1))]
    pattern = draw(st.sampled_from([sep.join(blurred), sep.join(blurred), draw(joined(PATTERN_WORDS))]))
    return pattern, key


@settings(max_examples=3000, deadline=None)
@given(pattern_and_key())
@example(("net.*.conf.?ll.rp_filter", "net.ipv4.conf.all.rp_filter"))
@example(("net.*.*.*.*", "net.ipv6.conf.default.accept_ra"))
@example(("net.ipv4.*", "net.ipv4.conf.all.forwarding"))
def test_a_pattern_only_allows_keys_of_its_own_length(case: tuple[str, str]) -> None:
    pattern, key_text = case
    try:
        parse_pattern(pattern)
    except PatternError:
        return
    try:
        key = parse_key(key_text)
    except CniError:
        return
    # through a policy file, the way ADD reads it (json quoting is valid YAML for these)
    policy = parse_policy(f"allow: [{json.dumps(pattern)}]\n".encode(), "/p.yaml")
    conf = {"cniVersion": "1.0.0", "name": "n", "runtimeConfig": {"sysctl": [f"{key_text}=1"]}}
    entry = parse_config(decode(json.dumps(conf).encode())).requested[0]
    verdict = policy.judge(entry)
    event("allowed" if verdict.allowed else "denied")
    if verdict.allowed:
        assert expanded_len(pattern) == expanded_len(key_text) == len(key.parts)
        pattern_parts = pattern.split("/") if "/" in pattern else pattern.split(".")
        per_interface_table = key.parts[1] in FAMILIES and key.parts[2] in TABLES
        if len(key.parts) == 5 and per_interface_table and key.parts[3] in ("all", "default", "lo"):
            assert pattern_parts[3] == key.parts[3], "a netns-wide device must be named, never matched"


ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/var/run/netns/cni-sysctl-property-does-not-exist",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}
ITEMS = st.builds(
    lambda k, v: f"{k}={v}", joined(WORDS) | st.sampled_from(sorted(KUBELET_SAFE)), st.sampled_from(VALUES)
)


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(ITEMS, max_size=2),
    st.lists(ITEMS, max_size=2),
    st.lists(ITEMS, max_size=2),
)
def test_without_a_policy_file_only_the_default_set_passes(
    conflist: list[str], args: list[str], runtime: list[str]
) -> None:
    conf = {
        "cniVersion": "1.0.0",
        "name": "n",
        "type": "cni-sysctl",
        "policy": "/nonexistent/cni-sysctl-property/cni-sysctl.yaml",
        "sysctl": conflist,
        "args": {"cni": {"sysctl": args}},
        "runtimeConfig": {"sysctl": runtime},
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}], "ips": []},
    }
    out, err = io.StringIO(), io.StringIO()
    rc = main([], ENV, io.BytesIO(json.dumps(conf).encode()), out, err)
    if not (conflist or args or runtime):
        assert rc == 0  # nothing to write: the netns is never entered
        return
    assert rc == 1, "the netns does not exist: an ADD with keys cannot succeed"
    code = json.loads(out.getvalue())["code"]
    assert code in (3, 7, 100), out.getvalue()
    event(f"code {code}")
    if code == 3:  # every key got past the policy
        untrusted = parse_config(decode(json.dumps(conf).encode())).untrusted
        for entry in untrusted:
            assert ".".join(entry.key.parts) in KUBELET_SAFE, f"{entry!r} got past the policy"
