from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni_sysctl.config import decode, parse_config
from cni_sysctl.errors import ConfigError, ErrorCode, NotAvailableError, PolicyDeniedError
from cni_sysctl.policy import check_untrusted, load

POLICY = """
allow:
  - ipv6.conf.accept_ra
  - key: net.ipv4.tcp_keepalive_*
    range: [60, 7200]
  - key: ipv4.conf.rp_filter
    values: ["0", "1", "2"]
"""


def untrusted(*items: str):  # type: ignore[no-untyped-def]
    data = json.dumps({"cniVersion": "1.0.0", "name": "n", "runtimeConfig": {"sysctl": list(items)}}).encode()
    return parse_config(decode(data)).untrusted


@pytest.fixture
def policy_file(tmp_path: Path) -> str:
    p = tmp_path / "cni-sysctl.yaml"
    p.write_text(POLICY)
    return str(p)


def test_allowed_entries_pass(policy_file: str) -> None:
    check_untrusted(
        untrusted("ipv6.conf.accept_ra=0", "net.ipv4.tcp_keepalive_time=600", "net.ipv4.conf.IFNAME.rp_filter=2"),
        policy_file,
    )


@pytest.mark.parametrize(
    "item",
    [
        "net.core.somaxconn=10",
        "net.ipv4.tcp_keepalive_time=10",
        "ipv4.conf.rp_filter=7",
        "net.ipv4.tcp_keepalive_intvl=abc",
    ],
)
def test_denied_entries_name_key_and_policy(policy_file: str, item: str) -> None:
    with pytest.raises(PolicyDeniedError) as info:
        check_untrusted(untrusted(item), policy_file)
    assert info.value.code == ErrorCode.POLICY_DENIED
    assert item.split("=", maxsplit=1)[0] in info.value.msg
    assert policy_file in info.value.msg


def test_no_policy_file_denies_untrusted(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.yaml")
    with pytest.raises(PolicyDeniedError, match="no policy file") as info:
        check_untrusted(untrusted("ipv6.conf.accept_ra=0"), missing)
    assert missing in info.value.msg


def test_no_untrusted_entries_never_reads_policy(tmp_path: Path) -> None:
    check_untrusted([], str(tmp_path / "none.yaml"))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("allow: [", "invalid"),
        ("- a", "mapping"),
        ("deny: []", "unknown top-level"),
        ("allow: [{values: ['1']}]", "'key'"),
        ("allow: [{key: a, range: [5, 1]}]", "range"),
        ("allow: [{key: a, colour: red}]", "unknown fields"),
    ],
)
def test_invalid_policy_files(tmp_path: Path, text: str, why: str) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=why):
        load(str(p))


def test_unreadable_policy_is_not_available(tmp_path: Path) -> None:
    with pytest.raises(NotAvailableError):
        load(str(tmp_path))  # a directory
