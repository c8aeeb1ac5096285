"""What the kernel does with a sysctl besides storing it: facts about parameters, as data.

Pure (no kernel access): planning, ADD, CHECK, `explain` and the tests read these tables. Each
entry names where in the kernel the fact comes from; every table was also checked against this
project's test kernel (Linux 6.18, HZ=250), and tests/integration/test_kernel_facts.py checks
each one against the running kernel, in both directions where it can (an entry the kernel does
not bear out, or a behaviour no entry covers, fails it).

* BOUNCE_PARAMS: per-interface parameters that act only at link-up (docs/link-bounce.md).
* RESET_WHEN_READY: values the kernel overwrites when the link becomes ready (carrier and
  operstate up): written after that, never before.
* companions(): the other values a write may change (the kernel propagates it, or shows the
  same setting under a second name): the journal records them, so that a rollback restores
  them too.
* SIDE_EFFECTS: parameters whose write adds or removes addresses or routes: the links they
  touch are snapshot, as for a bounce, so that a rollback restores them too.
* HOST_WIDE: keys a container netns shows as writable although their value is the host's.
* canonical_values(): what the kernel may store for a value (it rounds time values to its
  clock tick, folds booleans), so that ADD's read-back and CHECK compare alike.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    Parts = tuple[str, ...]

# --- link-up -------------------------------------------------------------------------------

# net.ipv6.conf.IF.* and net.ipv4.conf.IF.* parameters that act only at link-up or inet6 device
# setup; docs/link-bounce.md gives the kernel reason for each.
BOUNCE_PARAMS = frozenset(
    (
        # link-local address generation (addrconf_addr_gen at NETDEV_UP)
        "addr_gen_mode",
        "stable_secret",
        # router solicitation at link-up, and RA-learned state that only a down flushes
        "accept_ra",
        "accept_ra_defrtr",
        "accept_ra_from_local",
        "accept_ra_min_hop_limit",
        "accept_ra_min_lft",
        "accept_ra_mtu",
        "accept_ra_pinfo",
        "accept_ra_rt_info_max_plen",
        "accept_ra_rt_info_min_plen",
        "accept_ra_rtr_pref",
        "ra_defrtr_metric",
        "ra_honor_pio_life",
        "ra_honor_pio_pflag",
        "autoconf",
        "use_tempaddr",
        "temp_prefered_lft",
        "temp_valid_lft",
        "router_solicitations",
        "router_solicitation_delay",
        "router_solicitation_interval",
        "router_solicitation_max_interval",
        # duplicate address detection of the link-local address at link-up
        "accept_dad",
        "dad_transmits",
        "enhanced_dad",
        "optimistic_dad",
        "use_optimistic",
        # one-shot announcements at link-up
        "ndisc_notify",
        "arp_notify",
    )
)

# (family, table, parameter) -> where the kernel resets it.
RESET_WHEN_READY: dict[tuple[str, str, str], str] = {
    ("ipv6", "conf", "mtu"): (
        "net/ipv6/addrconf.c addrconf_notify(), NETDEV_UP/NETDEV_CHANGE once the link is ready: "
        '"If the MTU changed during the interface down" sets cnf.mtu6 to the device MTU whenever '
        "they differ, i.e. it discards any IPv6 MTU written while the link was down or not ready"
    ),
}


def reset_when_ready(parts: Parts) -> bool:
    return len(parts) == 5 and (parts[1], parts[2], parts[4]) in RESET_WHEN_READY


# --- values a write changes besides its own ------------------------------------------------

# Parameters whose write on net.ipv6.conf.all also sets every device and default.
IPV6_ALL_PROPAGATES: dict[str, str] = {
    "forwarding": "net/ipv6/addrconf.c addrconf_fixup_forwarding() -> addrconf_forward_change()",
    "disable_ipv6": "net/ipv6/addrconf.c addrconf_disable_ipv6() -> addrconf_disable_change()",
    "addr_gen_mode": "net/ipv6/addrconf.c addrconf_sysctl_addr_gen_mode(), the devconf_all branch",
    "ignore_routes_with_linkdown": "net/ipv6/addrconf.c addrconf_fixup_linkdown()",
    "force_forwarding": "net/ipv6/addrconf.c addrconf_sysctl_force_forwarding() (Linux 6.17+)",
}
# The same neighbour setting under two names (one field of struct neigh_parms, two units).
NEIGH_ALIASES: dict[str, str] = {
    "base_reachable_time": "base_reachable_time_ms",
    "base_reachable_time_ms": "base_reachable_time",
    "retrans_time": "retrans_time_ms",
    "retrans_time_ms": "retrans_time",
    "unres_qlen": "unres_qlen_bytes",
    "unres_qlen_bytes": "unres_qlen",
}
NEIGH_ALIASES_SOURCE = "net/core/neighbour.c neigh_sysctl_template: NEIGH_SYSCTL_*_REUSED_ENTRY"
# Netns-wide settings shown under two names.
NETNS_ALIASES: dict[Parts, tuple[Parts, ...]] = {
    ("net", "ipv6", "route", "gc_min_interval"): (("net", "ipv6", "route", "gc_min_interval_ms"),),
    ("net", "ipv6", "route", "gc_min_interval_ms"): (("net", "ipv6", "route", "gc_min_interval"),),
    ("net", "mptcp", "pm_type"): (("net", "mptcp", "path_manager"),),
    ("net", "mptcp", "path_manager"): (("net", "mptcp", "pm_type"),),
}
NETNS_ALIASES_SOURCE = (
    "net/ipv6/route.c ipv6_route_table_template (gc_min_interval and gc_min_interval_ms share "
    "ip6_rt_gc_min_interval); net/mptcp/ctrl.c (pm_type and path_manager)"
)
IPV4_FORWARDING_SOURCE = (
    "net/ipv4/devinet.c devinet_sysctl_forward() -> inet_forward_change(): conf.all.forwarding "
    "(also shown as net.ipv4.ip_forward) sets default and every device, and clears "
    "conf.all.accept_redirects"
)
IPV4_DEFAULT_SOURCE = (
    "net/ipv4/devinet.c devinet_conf_proc() -> devinet_copy_dflt_conf(): a write to "
    "conf.default is copied to every device that has not set the value itself"
)
STABLE_PRIVACY_SOURCE = (
    "net/ipv6/addrconf.c addrconf_sysctl_stable_secret(): switches addr_gen_mode to stable "
    "privacy on the device, or on every device for conf.default"
)


def _each(prefix: Parts, devices: Iterable[str], param: str) -> list[Parts]:
    return [(*prefix, device, param) for device in devices]


def companions(parts: Parts, devices: Iterable[str]) -> list[Parts]:
    """The values (other than `parts` itself) that writing `parts` may change, in a netns whose
    network devices are `devices` (their names, lo included)."""
    devices = list(devices)
    if parts in (("net", "ipv4", "ip_forward"), ("net", "ipv4", "conf", "all", "forwarding")):
        out = [("net", "ipv4", "ip_forward"), ("net", "ipv4", "conf", "all", "accept_redirects")]
        out += _each(("net", "ipv4", "conf"), ["all", "default", *devices], "forwarding")
        return [p for p in out if p != parts]
    if parts in NETNS_ALIASES:
        return list(NETNS_ALIASES[parts])
    if len(parts) != 5:
        return []
    _, family, table, device, param = parts
    if table == "neigh" and param in NEIGH_ALIASES:
        return [("net", family, "neigh", device, NEIGH_ALIASES[param])]
    if table != "conf":
        return []
    if family == "ipv4" and device == "default":
        return _each(("net", "ipv4", "conf"), devices, param)
    if family == "ipv6" and device == "all" and param in IPV6_ALL_PROPAGATES:
        return _each(("net", "ipv6", "conf"), ["default", *devices], param)
    if family == "ipv6" and param == "stable_secret":
        targets = devices if device == "default" else [device]
        return _each(("net", "ipv6", "conf"), targets, "addr_gen_mode")
    return []


# --- writes that change addresses and routes -------------------------------------------------

# (family, parameter) of net.<family>.conf.<device>.<parameter>, for any device.
SIDE_EFFECTS: dict[tuple[str, str], str] = {
    ("ipv6", "disable_ipv6"): (
        "net/ipv6/addrconf.c dev_disable_change(): 1 runs addrconf_ifdown() (every IPv6 address "
        "and route of the device goes); 0 brings back only the link-local"
    ),
    ("ipv6", "forwarding"): (
        "net/ipv6/addrconf.c dev_forward_change(): joins or leaves the all-routers group and "
        "adds or removes the subnet-router anycast addresses (routes in table local)"
    ),
    ("ipv6", "force_forwarding"): "net/ipv6/addrconf.c: as forwarding, for one device (Linux 6.17+)",
    ("ipv6", "addr_gen_mode"): (
        "net/ipv6/addrconf.c addrconf_sysctl_addr_gen_mode(): on an up device a new mode adds "
        "a link-local address at once (addrconf_init_auto_addrs)"
    ),
    ("ipv6", "stable_secret"): "net/ipv6/addrconf.c addrconf_sysctl_stable_secret(): as addr_gen_mode",
}


def side_effect(parts: Parts) -> bool:
    return len(parts) == 5 and parts[2] == "conf" and (parts[1], parts[4]) in SIDE_EFFECTS


def side_effect_everywhere(parts: Parts) -> bool:
    """A write whose side effect reaches every device (all or default)."""
    if not side_effect(parts):
        return False
    return parts[3] == "all" or (parts[3] == "default" and parts[4] == "stable_secret")


# Netns-wide keys that the container netns shows as writable but whose value is one for the
# whole host: writing one from a container would change the host. Refused like keys outside net.
HOST_WIDE: dict[Parts, str] = {
    ("net", "netfilter", "nf_hooks_lwtunnel"): (
        "net/netfilter/nf_hooks_lwtunnel.c nf_hooks_lwtunnel_sysctl_handler(): a static key "
        "shared by every netns (and once enabled it can never be disabled)"
    ),
}


# --- values the kernel stores differently --------------------------------------------------

# (family, table, parameter) -> unit conversion the kernel applies on write and read:
# "ms": milliseconds kept in jiffies (msecs_to_jiffies / jiffies_to_msecs round to the tick);
# "userhz": USER_HZ ticks kept in jiffies (clock_t_to_jiffies / jiffies_to_clock_t);
# "bool": any non-zero value is stored as 1.
_NEIGH_TICKS = {
    "anycast_delay": "userhz",
    "locktime": "userhz",
    "proxy_delay": "userhz",
    "base_reachable_time_ms": "ms",
    "interval_probe_time_ms": "ms",
    "retrans_time_ms": "ms",
}
ROUNDED_PER_DEVICE: dict[tuple[str, str, str], str] = {
    **{("ipv4", "neigh", p): kind for p, kind in _NEIGH_TICKS.items()},
    ("ipv4", "neigh", "retrans_time"): "userhz",  # IPv6's retrans_time is raw jiffies
    **{("ipv6", "neigh", p): kind for p, kind in _NEIGH_TICKS.items()},
    ("ipv6", "conf", "mldv1_unsolicited_report_interval"): "ms",
    ("ipv6", "conf", "mldv2_unsolicited_report_interval"): "ms",
}
ROUNDED_NETNS: dict[Parts, str] = {
    ("net", "ipv4", "icmp_ratelimit"): "ms",
    ("net", "ipv4", "tcp_invalid_ratelimit"): "ms",
    ("net", "ipv6", "icmp", "ratelimit"): "ms",
    ("net", "ipv6", "route", "gc_min_interval_ms"): "ms",
    **{
        ("net", "bridge", name): "bool"
        for name in (
            "bridge-nf-call-arptables",
            "bridge-nf-call-ip6tables",
            "bridge-nf-call-iptables",
            "bridge-nf-filter-pppoe-tagged",
            "bridge-nf-filter-vlan-tagged",
            "bridge-nf-pass-vlan-input-dev",
        )
    },
}
ROUNDED_SOURCE = (
    "kernel/sysctl.c proc_dointvec_ms_jiffies() and proc_dointvec_userhz_jiffies(), "
    "net/core/neighbour.c neigh_proc_dointvec_*jiffies(), kernel/time/time.c "
    "msecs_to_jiffies()/jiffies_to_msecs()/clock_t_to_jiffies()/jiffies_to_clock_t(); "
    "net/bridge/br_netfilter_hooks.c brnf_sysctl_call_tables() (booleans)"
)
# The tick rates a kernel may be built with (CONFIG_HZ); USER_HZ is 100 on every architecture
# Linux runs containers on.
HZ_CHOICES = (100, 250, 300, 1000)
USER_HZ = 100


def rounding(parts: Parts) -> str | None:
    if len(parts) == 5 and parts[2] in ("conf", "neigh"):
        return ROUNDED_PER_DEVICE.get((parts[1], parts[2], parts[4]))
    return ROUNDED_NETNS.get(parts)


def _ms(value: int, hz: int) -> int:
    jiffies = -(-value * hz // 1000)  # msecs_to_jiffies rounds up
    return jiffies * 1000 // hz if 1000 % hz == 0 else -(-jiffies * 1000 // hz)


def _userhz(value: int, hz: int) -> int:
    jiffies = value * hz // USER_HZ
    tick_ns = (1_000_000_000 + hz // 2) // hz
    return jiffies * tick_ns // (1_000_000_000 // USER_HZ)


def canonical_values(parts: Parts, value: str) -> set[str]:
    """Every value the kernel may read back after `value` was written to `parts` (whatever its
    HZ), `value` itself included."""
    out = {value}
    kind = rounding(parts)
    if kind is None:
        return out
    try:
        number = int(value)
    except ValueError:
        return out
    if kind == "bool":
        out.add("1" if number else "0")
        return out
    if number < 0:
        return out
    for hz in HZ_CHOICES:
        out.add(str(_ms(number, hz) if kind == "ms" else _userhz(number, hz)))
    return out
