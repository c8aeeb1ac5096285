from __future__ import annotations

import pytest

from cni_sysctl.errors import ConfigError, VersionError
from cni_sysctl.result import container_ifnames, convert, expected_state, validate

BRIDGE_1_0: dict[str, object] = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
        {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
        {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": "/var/run/netns/c1"},
    ],
    "ips": [
        {"interface": 2, "address": "10.88.0.2/24", "gateway": "10.88.0.1"},
        {"interface": 2, "address": "fd00:88::2/64", "gateway": "fd00:88::1"},
    ],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.88.0.1"}, {"dst": "::/0"}],
    "dns": {},
}

VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


@pytest.mark.parametrize("target", VERSIONS)
@pytest.mark.parametrize("source", VERSIONS)
def test_convert_between_all_versions(source: str, target: str) -> None:
    prev = convert(BRIDGE_1_0, source)
    out = convert(prev, target)
    assert out["cniVersion"] == target
    ips = out["ips"]
    assert isinstance(ips, list)
    if target.startswith("0."):
        assert [ip["version"] for ip in ips] == ["4", "6"]
    else:
        assert all("version" not in ip for ip in ips)
    # everything else passes through unchanged
    for field in ("interfaces", "routes", "dns"):
        assert out[field] == BRIDGE_1_0[field]
    assert [ip["address"] for ip in ips] == ["10.88.0.2/24", "fd00:88::2/64"]


def test_convert_does_not_mutate_input() -> None:
    prev = convert(BRIDGE_1_0, "0.4.0")
    convert(prev, "1.0.0")
    assert prev["ips"][0]["version"] == "4"  # type: ignore[index]


def test_container_ifnames_are_the_sandboxed_ones() -> None:
    assert container_ifnames(BRIDGE_1_0, "ignored") == ["eth0"]


def test_without_interfaces_falls_back_to_cni_ifname() -> None:
    assert container_ifnames({"cniVersion": "1.0.0", "ips": []}, "net1") == ["net1"]
    assert container_ifnames(None, "net1") == ["net1"]


def test_unsafe_ifname_from_prev_result_refused() -> None:
    prev: dict[str, object] = {"interfaces": [{"name": "../../kernel", "sandbox": "/x"}]}
    with pytest.raises(ConfigError, match="not a valid interface name"):
        container_ifnames(prev, "eth0")


def test_validate_refuses_unconvertible_versions() -> None:
    with pytest.raises(VersionError, match=r"0\.2\.0"):
        validate({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}})


@pytest.mark.parametrize(
    ("prev", "words"),
    [
        ({"ips": [{"address": "10.0.0.2"}]}, "address '10.0.0.2', which is not ADDRESS/PREFIX"),
        ({"ips": [{"address": "garbage/xx"}]}, "address 'garbage/xx'"),
        ({"ips": [{"address": "10.0.0.2/33"}]}, "address '10.0.0.2/33'"),
        ({"ips": [{"address": "fd00::2/129"}]}, "address 'fd00::2/129'"),
        ({"ips": [{"address": "10.0.0.2/24", "gateway": "nope"}]}, "gateway 'nope'"),
        ({"ips": [{"address": "10.0.0.2/24", "interface": 3}]}, "names interface 3"),
        ({"ips": [{"address": "10.0.0.2/24", "interface": True}]}, "names interface True"),
        ({"routes": [{"dst": "0.0.0.0/0", "gw": "nope"}]}, "gw 'nope'"),
        ({"routes": [{"dst": "default"}]}, "dst 'default'"),
        ({"routes": [{"gw": "10.0.0.1"}]}, "dst None"),
        ({"ips": [{"address": "10.0.0.2/\u0663"}]}, "address"),  # an Arabic-Indic digit: not ASCII
    ],
)
def test_validate_refuses_malformed_addresses_and_routes(prev: dict[str, object], words: str) -> None:
    """prevResult is checked before any change: a bounce must be able to verify it after."""
    with pytest.raises(ConfigError) as info:
        validate({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}], **prev})
    assert words in info.value.msg


def test_validate_accepts_what_the_plugins_return() -> None:
    validate(BRIDGE_1_0)
    validate({"cniVersion": "1.0.0", "ips": [{"address": "fd00::2/64", "gateway": "fd00::1"}], "routes": []})


def test_expected_state_per_interface() -> None:
    exp = expected_state(BRIDGE_1_0, ["eth0"])
    assert exp["eth0"].addresses == ["10.88.0.2/24", "fd00:88::2/64"]
    assert exp["eth0"].routes == [("0.0.0.0/0", "10.88.0.1"), ("::/0", None)]
