"""cni-sysctl beside the reference tuning plugin (Debian's containernetworking-plugins 1.1.1),
with the same three keys in the IFNAME form both understand."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Env, load_conflist, plugin_of, three_paths

pytestmark = pytest.mark.e2e

SAME_KEYS = {
    "net.ipv6.conf.IFNAME.accept_ra": "2",
    "net.ipv4.conf.IFNAME.rp_filter": "2",
    "net.ipv4.tcp_keepalive_time": "600",
}


def test_same_values_as_tuning_and_a_check_that_works(env: Env) -> None:
    bridge = plugin_of(load_conflist("sysctl-bridge"), "bridge")
    with_tuning = env.conflist([bridge, {"type": "tuning", "sysctl": SAME_KEYS}])
    with_ours = env.conflist([bridge, {"type": "cni-sysctl", "sysctl": SAME_KEYS}])
    tuning_ns = env.new_container()

    env.attach(with_tuning, netns=env.netns_path(tuning_ns))
    env.attach(with_ours)
    for path, value in three_paths().items():
        assert env.sysctl(path, ns=tuning_ns) == value, f"tuning: {path}"
        assert env.sysctl(path) == value, f"cni-sysctl: {path}"

    # Known upstream bug: tuning's CHECK reads the key with IFNAME left in
    # (/proc/sys/net/ipv4/conf/IFNAME/rp_filter), so CHECK fails on an attachment tuning
    # itself set up correctly. Its ADD substitutes the name; its CHECK does not.
    tuning_check = env.check(with_tuning, netns=env.netns_path(tuning_ns))
    assert tuning_check.rc != 0
    assert "IFNAME" in tuning_check.stderr, tuning_check.stderr

    ours = env.check(with_ours)
    assert ours.rc == 0, ours.stderr
