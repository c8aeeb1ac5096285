from __future__ import annotations

import json

import pytest

from cni_sysctl.config import SOURCE_ARGS, SOURCE_CONFLIST, SOURCE_RUNTIME, decode, parse_config
from cni_sysctl.errors import CniError, ErrorCode


def conf(**fields: object) -> bytes:
    base: dict[str, object] = {"cniVersion": "1.0.0", "name": "net1", "type": "cni-sysctl"}
    base.update(fields)
    return json.dumps(base).encode()


def error_of(data: bytes, **kw: bool) -> CniError:
    with pytest.raises(CniError) as info:
        parse_config(decode(data), **kw)
    return info.value


def test_object_form_keeps_declared_order() -> None:
    c = parse_config(
        decode(
            conf(sysctl={"net.ipv4.tcp_keepalive_time": "600", "ipv6.conf.accept_ra": 2, "net.core.somaxconn": "1024"})
        )
    )
    assert [(e.key.text, e.value) for e in c.entries] == [
        ("net.ipv4.tcp_keepalive_time", "600"),
        ("ipv6.conf.accept_ra", "2"),
        ("net.core.somaxconn", "1024"),
    ]


def test_list_form_splits_on_first_equals_and_strips() -> None:
    c = parse_config(decode(conf(sysctl=["ipv6.conf.accept_ra = 2", "net.ipv4.ip_local_port_range=32768 60999"])))
    assert [(e.key.text, e.value) for e in c.entries] == [
        ("ipv6.conf.accept_ra", "2"),
        ("net.ipv4.ip_local_port_range", "32768 60999"),
    ]


def test_sources_are_tagged_and_untrusted_ones_listed() -> None:
    c = parse_config(
        decode(
            conf(
                sysctl=["net.core.somaxconn=1"],
                args={"cni": {"sysctl": {"ipv6.conf.accept_ra": "0"}}},
                runtimeConfig={"sysctl": ["ipv4.conf.rp_filter=2"]},
            )
        )
    )
    assert [e.source for e in c.entries] == [SOURCE_CONFLIST, SOURCE_ARGS, SOURCE_RUNTIME]
    assert [e.key.text for e in c.untrusted] == ["ipv6.conf.accept_ra", "ipv4.conf.rp_filter"]


def test_defaults() -> None:
    c = parse_config(decode(conf()))
    assert c.link_bounce == "auto"
    assert c.policy == "/etc/cni/cni-sysctl.yaml"
    assert not c.policy_explicit
    assert c.entries == []


@pytest.mark.parametrize(
    ("data", "code", "text"),
    [
        (b"{not json", ErrorCode.DECODING_FAILURE, "not valid JSON"),
        (b"[1]", ErrorCode.DECODING_FAILURE, "JSON object"),
        (conf(cniVersion="0.2.0"), ErrorCode.INCOMPATIBLE_VERSION, "0.2.0"),
        (conf(cniVersion=None), ErrorCode.INCOMPATIBLE_VERSION, "cniVersion missing"),
        (conf(cniVersion="x.y"), ErrorCode.DECODING_FAILURE, "not a version"),
        (conf(name=""), ErrorCode.INVALID_NETWORK_CONFIG, "missing network name"),
        (conf(linkBounce="sometimes"), ErrorCode.INVALID_NETWORK_CONFIG, "linkBounce 'sometimes'"),
        (conf(policy="relative.yaml"), ErrorCode.INVALID_NETWORK_CONFIG, "absolute path"),
        (conf(sysctl="ipv6.conf.accept_ra=2"), ErrorCode.INVALID_NETWORK_CONFIG, "object or a list"),
        (conf(sysctl=["ipv6.conf.accept_ra"]), ErrorCode.INVALID_NETWORK_CONFIG, "key=value"),
        (conf(sysctls={"a": "1"}), ErrorCode.UNSUPPORTED_FIELD, "'sysctls'"),
        (conf(sysctl={"kernel.core_pattern": "x"}), ErrorCode.INVALID_NETWORK_CONFIG, "kernel.core_pattern"),
        (conf(runtimeConfig={"sysctl": {"vm.swappiness": "1"}}), ErrorCode.INVALID_NETWORK_CONFIG, "vm.swappiness"),
        (conf(prevResult=[]), ErrorCode.INVALID_NETWORK_CONFIG, "prevResult"),
    ],
)
def test_rejections(data: bytes, code: int, text: str) -> None:
    err = error_of(data)
    assert err.code == code
    assert text in err.msg


def test_add_needs_prev_result() -> None:
    err = error_of(conf(), need_prev_result=True)
    assert err.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert "prevResult missing" in err.msg


def test_precedence_conflist_then_args_then_runtime_config() -> None:
    c = parse_config(
        decode(
            conf(
                sysctl=["net.ipv4.tcp_keepalive_time=600", "net.core.somaxconn=1"],
                args={"cni": {"sysctl": ["net.ipv4.tcp_keepalive_time=300", "ipv6.conf.accept_ra=0"]}},
                runtimeConfig={"sysctl": {"net.ipv4.tcp_keepalive_time": "200"}},
            )
        )
    )
    assert [(e.source, e.value) for e in c.requested] == [
        (SOURCE_CONFLIST, "600"),
        (SOURCE_CONFLIST, "1"),
        (SOURCE_ARGS, "300"),
        (SOURCE_ARGS, "0"),
        (SOURCE_RUNTIME, "200"),
    ]
    # only the last value of a key is written; the others name what replaced them
    assert [(e.key.text, e.value) for e in c.entries] == [
        ("net.core.somaxconn", "1"),
        ("ipv6.conf.accept_ra", "0"),
        ("net.ipv4.tcp_keepalive_time", "200"),
    ]
    first, _, second, _, third = c.requested
    assert first.overridden_by is third
    assert second.overridden_by is third
    # every untrusted value for a key the conflist sets is an override of the conflist's entry
    assert second.overrides is first
    assert third.overrides is first
    assert c.requested[3].overrides is None


def test_override_is_by_key_not_by_spelling() -> None:
    c = parse_config(
        decode(conf(sysctl=["net.ipv6.conf.IFNAME.accept_ra=2"], runtimeConfig={"sysctl": ["ipv6.conf.accept_ra=0"]}))
    )
    assert [(e.key.text, e.value) for e in c.entries] == [("ipv6.conf.accept_ra", "0")]
    assert c.requested[1].overrides is c.requested[0]


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (
            {"sysctl": ["ipv6.conf.accept_ra=1", "ipv6.conf.accept_ra=2"]},
            "sysctl: key net.ipv6.conf.IFNAME.accept_ra given twice ('ipv6.conf.accept_ra')",
        ),
        (
            {"sysctl": {"ipv6.conf.accept_ra": "1", "net.ipv6.conf.IFNAME.accept_ra": "2"}},
            "sysctl: key net.ipv6.conf.IFNAME.accept_ra given twice "
            "('ipv6.conf.accept_ra' and 'net.ipv6.conf.IFNAME.accept_ra')",
        ),
        (
            {"args": {"cni": {"sysctl": ["net/core/somaxconn=1", "net.core.somaxconn=2"]}}},
            "args.cni.sysctl: key net.core.somaxconn given twice",
        ),
    ],
)
def test_a_key_given_twice_by_one_source_is_an_error(fields: dict[str, object], text: str) -> None:
    err = error_of(conf(**fields))
    assert err.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert text in err.msg


def test_a_repeated_json_member_is_an_error() -> None:
    # json would keep the last value silently
    data = (
        b'{"cniVersion": "1.0.0", "name": "n", '
        b'"runtimeConfig": {"sysctl": {"net.core.somaxconn": "1", "net.core.somaxconn": "2"}}}'
    )
    err = error_of(data)
    assert err.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert err.msg == "runtimeConfig.sysctl: key 'net.core.somaxconn' given twice"
