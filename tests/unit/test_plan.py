from __future__ import annotations

import json

from cni_sysctl.config import decode, parse_config
from cni_sysctl.plan import build_plan


def plan_for(sysctl: object, ifnames: list[str], bounce: str = "auto"):  # type: ignore[no-untyped-def]
    data = json.dumps({"cniVersion": "1.0.0", "name": "n", "sysctl": sysctl, "linkBounce": bounce}).encode()
    return build_plan(parse_config(decode(data)), ifnames)


def test_declared_order_and_expansion_per_interface() -> None:
    plan = plan_for(
        ["net.ipv4.tcp_keepalive_time=600", "ipv6.conf.accept_ra=2", "net.ipv4.conf.IFNAME.rp_filter=2"],
        ["eth0", "eth1"],
    )
    assert [(w.name, w.value) for w in plan.writes] == [
        ("net.ipv4.tcp_keepalive_time", "600"),
        ("net.ipv6.conf.eth0.accept_ra", "2"),
        ("net.ipv6.conf.eth1.accept_ra", "2"),
        ("net.ipv4.conf.eth0.rp_filter", "2"),
        ("net.ipv4.conf.eth1.rp_filter", "2"),
    ]


def test_auto_bounces_only_interfaces_with_bounce_keys() -> None:
    plan = plan_for(["ipv4.conf.rp_filter=1", "net.core.somaxconn=100"], ["eth0"])
    assert plan.bounce_ifnames == []
    plan = plan_for(["ipv6.conf.addr_gen_mode=1"], ["eth0"])
    assert plan.bounce_ifnames == ["eth0"]
    assert plan.writes[0].needs_bounce


def test_always_and_never() -> None:
    assert plan_for(["ipv4.conf.rp_filter=1"], ["eth0"], "always").bounce_ifnames == ["eth0"]
    assert plan_for(["ipv6.conf.addr_gen_mode=1"], ["eth0"], "never").bounce_ifnames == []


def test_dotted_interface_name_written_as_one_component() -> None:
    plan = plan_for(["ipv4.conf.rp_filter=1"], ["eth0.100"])
    assert plan.writes[0].parts == ("net", "ipv4", "conf", "eth0.100", "rp_filter")
    assert plan.writes[0].name == "net/ipv4/conf/eth0.100/rp_filter"
