from __future__ import annotations

import pytest

from cni_sysctl.errors import ErrorCode, KeyRejectedError
from cni_sysctl.keys import check_value, display, parse_key
from cni_sysctl.request import check_ifname


@pytest.mark.parametrize(
    ("text", "parts", "index"),
    [
        ("ipv6.conf.accept_ra", ("net", "ipv6", "conf", "IFNAME", "accept_ra"), 3),
        ("ipv4.neigh.base_reachable_time_ms", ("net", "ipv4", "neigh", "IFNAME", "base_reachable_time_ms"), 3),
        ("net.ipv4.conf.IFNAME.rp_filter", ("net", "ipv4", "conf", "IFNAME", "rp_filter"), 3),
        ("net/ipv4/conf/IFNAME/rp_filter", ("net", "ipv4", "conf", "IFNAME", "rp_filter"), 3),
        ("net.ipv4.tcp_keepalive_time", ("net", "ipv4", "tcp_keepalive_time"), None),
        ("net/core/somaxconn", ("net", "core", "somaxconn"), None),
        ("net.ipv6.conf.all.disable_ipv6", ("net", "ipv6", "conf", "all", "disable_ipv6"), None),
        ("net.ipv4.neigh.default.gc_thresh1", ("net", "ipv4", "neigh", "default", "gc_thresh1"), None),
    ],
)
def test_accepted_forms(text: str, parts: tuple[str, ...], index: int | None) -> None:
    key = parse_key(text)
    assert key.parts == parts
    assert key.ifname_index == index


def test_dotted_ifname_is_one_component() -> None:
    key = parse_key("ipv4.conf.rp_filter")
    assert key.expand("eth0.100") == ("net", "ipv4", "conf", "eth0.100", "rp_filter")
    assert display(key.expand("eth0.100")) == "net/ipv4/conf/eth0.100/rp_filter"
    assert display(key.expand("eth0")) == "net.ipv4.conf.eth0.rp_filter"


def test_netns_wide_key_does_not_expand() -> None:
    key = parse_key("net.ipv4.tcp_keepalive_time")
    assert key.expand("eth0") == key.parts


def rejected(text: object) -> KeyRejectedError:
    with pytest.raises(KeyRejectedError) as info:
        parse_key(text)
    assert info.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert repr(text) in info.value.msg or str(text) in info.value.msg
    return info.value


@pytest.mark.parametrize("text", ["kernel.core_pattern", "vm.swappiness", "fs.file-max", "kernel/shmmax"])
def test_outside_net_names_runtime_sysctl(text: str) -> None:
    err = rejected(text)
    assert "not a network sysctl" in err.msg
    assert "--sysctl" in err.details


def test_concrete_interface_suggests_short_and_ifname_forms() -> None:
    err = rejected("net.ipv6.conf.eth0.accept_ra")
    assert "'eth0'" in err.msg
    assert "ipv6.conf.accept_ra" in err.details
    assert "net.ipv6.conf.IFNAME.accept_ra" in err.details


def test_net_prefix_on_short_key_suggests_short_form() -> None:
    err = rejected("net.ipv6.conf.accept_ra")
    assert "did you mean the short form ipv6.conf.accept_ra" in err.details


def test_missing_table_suggests_conf() -> None:
    assert "ipv6.conf.accept_ra" in rejected("ipv6.accept_ra").details


def test_short_form_with_placeholder_suggests_net_prefix() -> None:
    assert "net.ipv6.conf.IFNAME.accept_ra" in rejected("ipv6.conf.IFNAME.accept_ra").details


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ipv4.conf../..", "'..'"),
        ("net/ipv4/../../kernel/core_pattern", "'..'"),
        ("net..ipv4.tcp_syncookies", "'..'"),
        ("net.ipv4.tcp_syncookies.", "empty component"),
        ("/proc/sys/net/core/somaxconn", "absolute"),
        ("net.core.some maxconn", "whitespace"),
        ("net.core.somaxconn\n", "whitespace"),
        ("net.core.soma\x00xconn", "NUL"),
        ("net.core.*", "glob"),
        ("net.ipv4.conf.e?h0.rp_filter", "glob"),
        ("net/ipv4.conf/x", "mixes"),
        ("", "empty key"),
        ("net.core", "directory"),
        ("net.core.somaxconn;x", "not allowed"),
    ],
)
def test_path_tricks_rejected(text: str, why: str) -> None:
    assert why in rejected(text).msg


def test_non_string_key_rejected() -> None:
    with pytest.raises(KeyRejectedError, match="must be strings"):
        parse_key(5)


@pytest.mark.parametrize(
    ("raw", "value"), [("2", "2"), (2, "2"), (600.0, "600"), ("32768 60999", "32768 60999"), ("1\t2", "1\t2")]
)
def test_values_converted(raw: object, value: str) -> None:
    assert check_value("k", raw) == value


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("1\n", "newline"),
        ("a\x00", "NUL"),
        ("x" * 300, "longer than"),
        (True, "not a string or number"),
        (None, "not a string or number"),
        ([1], "not a string or number"),
        (1.5, "not an integer"),
        ("", "empty value"),
    ],
)
def test_bad_values_rejected(raw: object, why: str) -> None:
    with pytest.raises(KeyRejectedError, match=why) as info:
        check_value("net.core.somaxconn", raw)
    assert "net.core.somaxconn" in info.value.msg


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("eth0", True),
        ("eth0.100", True),
        ("a" * 15, True),
        ("a" * 16, False),
        ("..", False),
        ("a/b", False),
        ("a b", False),
        ("", False),
    ],
)
def test_ifname_rules(name: str, ok: bool) -> None:
    assert (check_ifname(name) is None) is ok


@pytest.mark.parametrize("raw", ["0600", "010 20", "-07"])
def test_leading_zero_integers_rejected_as_octal_ambiguity(raw: str) -> None:
    with pytest.raises(KeyRejectedError, match="octal"):
        check_value("net.ipv4.tcp_keepalive_time", raw)


@pytest.mark.parametrize(
    ("configured", "kernel"), [("0x258", "600"), ("32768  60999", "32768\t60999"), ("+5", "5"), ("0", "0")]
)
def test_normalised_values_compare_as_the_kernel_reads_them(configured: str, kernel: str) -> None:
    from cni_sysctl.keys import normalise_value

    assert normalise_value(check_value("k", configured)) == normalise_value(kernel)


def test_did_you_mean_walks_components() -> None:
    from cni_sysctl.keys import did_you_mean

    tree = {
        ("net",): ["ipv4", "ipv6", "core"],
        ("net", "ipv4"): ["conf", "tcp_keepalive_time", "tcp_syncookies"],
        ("net", "ipv4", "conf"): ["all", "default", "lo"],
        ("net", "ipv4", "conf", "default"): ["rp_filter", "proxy_arp"],
        ("net", "ipv4", "conf", "all"): ["rp_filter", "proxy_arp"],
    }
    assert did_you_mean(parse_key("net.ipv4.tcp_keepalive_tim").parts, tree.get) == "net.ipv4.tcp_keepalive_time"
    # per-interface keys are looked up under `default` and keep IFNAME in the suggestion
    assert did_you_mean(parse_key("ipv4.conf.rp_filtre").parts, tree.get) == "net.ipv4.conf.IFNAME.rp_filter"
    assert did_you_mean(parse_key("net.ipv4.confs.all.rp_filter").parts, tree.get) == "net.ipv4.conf.all.rp_filter"
    assert did_you_mean(parse_key("net.ipv4.tcp_keepalive_time").parts, tree.get) is None  # nothing to fix
    assert did_you_mean(parse_key("net.ipv4.zzzzzz").parts, tree.get) is None  # nothing close
