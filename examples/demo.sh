#!/usr/bin/env bash
# cni-sysctl in action on a fresh Debian 12 machine (run as root from the
# repository). Everything happens in two throwaway network namespaces: a
# "host" one that holds the bridge and its gateway addresses, and a
# "container" one that receives eth0. The machine's own links, routes,
# /etc/cni and /var/lib/cni are left alone.
#
#   sudo examples/demo.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ((EUID != 0)); then
    echo "demo: run as root (it creates network namespaces)" >&2
    exit 1
fi

say() { printf '\n==> %s\n' "$*"; }

"$repo/tools/bootstrap.sh"

tmp=$(mktemp -d /tmp/cni-sysctl-demo.XXXXXX)
id=${tmp##*.}
host_ns=cni-sysctl-demo-host-$id
ctr_ns=cni-sysctl-demo-ctr-$id
cleanup() {
    ip netns del "$ctr_ns" 2>/dev/null || true
    ip netns del "$host_ns" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "install the plugin into $tmp/bin"
"$repo/.venv/bin/cni-sysctl" install --bin-dir "$tmp/bin"
ls -l "$tmp/bin"

say "create namespaces: host $host_ns, container $ctr_ns"
ip netns add "$host_ns"
ip netns add "$ctr_ns"
ip -n "$host_ns" link set lo up

# host-local keeps its leases, and cnitool its cached results, in $tmp.
mkdir -p "$tmp/net.d"
cat >"$tmp/net.d/sysctl-demo.conflist" <<CONF
{
  "cniVersion": "1.0.0",
  "name": "sysctl-demo",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni-sysctl0",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$tmp/ipam",
        "ranges": [
          [{ "subnet": "10.88.10.0/24" }],
          [{ "subnet": "fd00:88:10::/64" }]
        ],
        "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "::/0" }]
      }
    },
    {
      "type": "cni-sysctl",
      "sysctl": [
        "ipv6.conf.accept_ra=2",
        "net.ipv4.conf.IFNAME.rp_filter=2",
        "net.ipv4.tcp_keepalive_time=600"
      ],
      "linkBounce": "auto"
    }
  ]
}
CONF
say "the network configuration ($tmp/net.d/sysctl-demo.conflist)"
cat "$tmp/net.d/sysctl-demo.conflist"

export NETCONFPATH=$tmp/net.d CNI_PATH=$tmp/bin:/usr/lib/cni CNI_CACHE_DIR=$tmp/cache
cnitool() { ip netns exec "$host_ns" "$repo/.build/cnitool" "$@"; }
in_ctr() { ip netns exec "$ctr_ns" "$@"; }

say "before: eth0 does not exist yet; a new interface starts from the 'default' values"
in_ctr sysctl net.ipv6.conf.default.accept_ra net.ipv4.conf.default.rp_filter \
    net.ipv4.tcp_keepalive_time

say "cnitool add sysctl-demo (bridge + host-local, then cni-sysctl)"
cnitool add sysctl-demo "/var/run/netns/$ctr_ns"

say "after: the values inside the container namespace"
in_ctr sysctl net.ipv6.conf.eth0.accept_ra net.ipv4.conf.eth0.rp_filter \
    net.ipv4.tcp_keepalive_time

say "eth0 kept its addresses and routes through the link bounce"
in_ctr ip addr show dev eth0
in_ctr ip -4 route
in_ctr ip -6 route

say "the gateway (the bridge in the host namespace) answers"
in_ctr busybox ping -c 1 -w 5 10.88.10.1
in_ctr busybox ping -c 1 -w 5 fd00:88:10::1

say "cnitool check sysctl-demo"
cnitool check sysctl-demo "/var/run/netns/$ctr_ns"
echo "ok: every configured value is in place"

say "cnitool del sysctl-demo"
cnitool del sysctl-demo "/var/run/netns/$ctr_ns"
in_ctr ip -br link

say "done; the namespaces and $tmp are removed on exit"
