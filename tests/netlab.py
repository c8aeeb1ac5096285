"""The test lab: throwaway namespaces and links, and the ways tests look at them.

One place for what every suite needs: unique names, commands run inside a namespace, `ip -j`
queries, sysctl reads and writes as an operator would do them, waiting for the kernel to
settle, an ICMP echo, a full dump of a netns, the plugin installed as an operator installs it,
and the plugin run in this process or as a runtime runs it. Fixtures that use these live in the
conftest.py of the suites that need them (tests/conftest.py: root gating and make_netns).

Everything here works on namespaces the tests made: the machine's own links, routes and
/proc/sys/net are only ever read.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from io import BytesIO, StringIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NETNS_DIR = "/var/run/netns"
SYSTEM_PLUGINS = "/usr/lib/cni"
VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


# --- names and commands ------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """A short unique name (fits IFNAMSIZ for prefixes up to 6 characters)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def run(
    *cmd: str, ns: str | None = None, check: bool = True, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`cmd`, inside netns `ns` when given: a name of `ip netns` (`ip netns exec`), or
    "pid:N", the netns of process N (`nsenter`: a pod's netns that only its runtime's mount
    namespace shows as a file)."""
    if ns is None:
        argv = list(cmd)
    elif ns.startswith("pid:"):
        argv = ["nsenter", f"--target={ns[4:]}", "--net", "--", *cmd]
    else:
        argv = ["ip", "netns", "exec", ns, *cmd]
    proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed (rc {proc.returncode}):\n{proc.stderr.strip()}")
    return proc


def batch(ns: str, commands: list[str]) -> None:
    """Several `ip` commands in one process (`ip -batch`)."""
    run("ip", "-batch", "-", ns=ns, input="\n".join(commands) + "\n")


def netns_path(ns: str) -> str:
    """The file of netns `ns` (a name, or "pid:N")."""
    return f"/proc/{ns[4:]}/ns/net" if ns.startswith("pid:") else f"{NETNS_DIR}/{ns}"


# --- looking at a namespace -----------------------------------------------------------------


def ip_json(ns: str, *args: str) -> list[Any]:
    out = run("ip", "-j", *args, ns=ns).stdout
    return json.loads(out) if out.strip() else []


def read_sysctl(ns: str, path: str) -> str:
    """/proc/sys/<path> inside netns `ns`, read the way an operator would (path with slashes)."""
    return run("cat", f"/proc/sys/{path}", ns=ns).stdout.strip()


def write_sysctl(ns: str, path: str, value: str) -> None:
    run("sh", "-c", 'echo "$1" > "/proc/sys/$0"', path, value, ns=ns)


def addr_info(ns: str, ifname: str) -> list[dict[str, Any]]:
    return [a for link in ip_json(ns, "addr", "show", "dev", ifname) for a in link.get("addr_info", [])]


def addresses(ns: str, ifname: str = "eth0", scope: str = "global") -> set[str]:
    """The addresses of `ifname` of one scope, as CIDR strings."""
    return {f"{a['local']}/{a['prefixlen']}" for a in addr_info(ns, ifname) if a.get("scope") == scope}


def link_locals(ns: str, ifname: str = "eth0") -> set[str]:
    return {str(a["local"]) for a in addr_info(ns, ifname) if str(a["local"]).startswith("fe80:")}


def tentative(ns: str, ifname: str = "eth0") -> set[str]:
    """Addresses of `ifname` still in duplicate address detection (not usable yet)."""
    return {f"{a['local']}/{a['prefixlen']}" for a in addr_info(ns, ifname) if a.get("tentative")}


def routes(ns: str, family: str, table: str = "main") -> list[dict[str, Any]]:
    return ip_json(ns, f"-{family}", "route", "show", "table", table)


def default_gateways(ns: str, ifname: str = "eth0") -> set[str]:
    return {
        str(r.get("gateway"))
        for family in ("4", "6")
        for r in routes(ns, family)
        if r.get("dst") == "default" and r.get("dev") == ifname
    }


def link_flags(ns: str, ifname: str = "eth0") -> list[str]:
    return list(ip_json(ns, "link", "show", "dev", ifname)[0]["flags"])


def is_up(ns: str, ifname: str = "eth0") -> bool:
    return "UP" in link_flags(ns, ifname)


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 8.0, step: float = 0.05) -> float:
    """Poll `condition` until it holds; returns the seconds it took. AssertionError naming
    `what` after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


def settle(ns: str, ifname: str = "eth0", timeout: float = 8.0) -> None:
    """Wait until no address of `ifname` is tentative: the kernel's link-local goes through DAD
    at every link-up, and its local route appears only once that is done."""
    wait_until(f"addresses of {ifname} in {ns} leave DAD", lambda: not tentative(ns, ifname), timeout)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


def ping(ns: str, addr: str, timeout: float = 5.0) -> bool:
    """One ICMP(v6) echo from inside `ns` to `addr`, retried until `timeout`: answered?"""
    from cni_sysctl.netns import NetnsEntered

    v6 = ":" in addr
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    ident = (os.getpid() ^ int.from_bytes(os.urandom(2), "big")) & 0xFFFF
    with NetnsEntered(netns_path(ns)):
        sock = socket.socket(family, socket.SOCK_RAW, proto)
    with sock:
        deadline = time.monotonic() + timeout
        seq = 0
        while time.monotonic() < deadline:
            seq += 1
            payload = b"cni-sysctl test"
            header = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, seq)
            packet = header + payload
            if not v6:  # the kernel fills in the ICMPv6 checksum itself
                packet = struct.pack("!BBHHH", 8, 0, _checksum(packet), ident, seq) + payload
            try:
                sock.sendto(packet, (addr, 0))
            except OSError:
                time.sleep(0.1)  # no route yet (a link just came up)
                continue
            until = min(deadline, time.monotonic() + 0.3)
            while (left := until - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    break
                data, src = sock.recvfrom(2048)
                if not v6:
                    data = data[(data[0] & 0x0F) * 4 :]
                kind, _, _, rid, rseq = struct.unpack_from("!BBHHH", data)
                if kind == (129 if v6 else 0) and rid == ident and rseq == seq and src[0] == addr:
                    return True
    return False


# --- the full state of a netns ------------------------------------------------------------------

# What `ip` of iproute2 6.1 does not print: who made an address (IFA_PROTO: 3 is the kernel's
# link-local generation, which the plugin tells from IPAM's by it), its flags in full and its
# prefix route metric. Read with a bare RTM_GETADDR dump, sorted.
_ADDR_ATTRS = r"""
import socket, struct
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.bind((0, 0))
s.send(struct.pack("=IHHII", 24, 22, 0x301, 1, 0) + bytes(8))  # RTM_GETADDR, REQUEST|DUMP
out, done = [], False
while not done:
    data, off = s.recv(65536), 0
    while off < len(data):
        ln, typ = struct.unpack_from("=IH", data, off)
        if typ in (2, 3):  # NLMSG_ERROR, NLMSG_DONE
            assert typ == 3 or struct.unpack_from("=i", data, off + 16)[0] == 0
            done = True
            break
        fam, plen, flags, scope, index = struct.unpack_from("=BBBBI", data, off + 16)
        attrs, a = {}, off + 24
        while a < off + ln:
            alen, atype = struct.unpack_from("=HH", data, a)
            attrs[atype] = data[a + 4 : a + alen]
            a += (alen + 3) & ~3
        if fam in (socket.AF_INET, socket.AF_INET6):
            addr = socket.inet_ntop(fam, attrs.get(2) or attrs[1])  # IFA_LOCAL, IFA_ADDRESS
            flags = struct.unpack("=I", attrs[8])[0] if 8 in attrs else flags  # IFA_FLAGS
            metric = struct.unpack("=I", attrs[9])[0] if 9 in attrs else None  # IFA_RT_PRIORITY
            proto = attrs[11][0] if 11 in attrs else None  # IFA_PROTO
            out.append(f"if{index} {addr}/{plen} scope {scope} flags {flags:#x} metric {metric} proto {proto}")
        off += (ln + 3) & ~3
print("\n".join(sorted(out)))
"""

# Every readable /proc/sys/net value but those the kernel changes on its own.
_SYSCTLS = r"""
import os, sys
skip = set(sys.argv[1:])
out = []
for root, dirs, files in os.walk("/proc/sys/net"):
    dirs.sort()
    for name in sorted(files):
        path = os.path.join(root, name)
        if name in skip or path in skip:
            continue
        try:
            with open(path) as f:
                value = f.read().strip().replace("\n", "\\n")
                out.append(f"{path[10:]}={value}")
        except OSError:
            pass
print("\n".join(out))
"""
# Counters and caches the kernel moves by itself (not settings): left out of sysctl dumps.
VOLATILE_SYSCTLS = ("nf_conntrack_count", "/proc/sys/net/ipv6/route/gc_interval")

_DUMP = f"""
echo '## ip -d link'; ip -d link show | grep -v '^ *link/' | sed 's/ \\(altname\\|alias\\) .*//'
echo '## ip -d addr'; ip -d addr show | grep -v 'valid_lft\\|^ *link/\\|^[0-9]'
echo '## address attributes'; {sys.executable} -I -S -c '{_ADDR_ATTRS}'
echo '## ip -d route'; ip -d route show table all
echo '## ip -d -6 route'; ip -d -6 route show table all
echo '## ip neigh permanent/proxy'; ip neigh show nud permanent; ip neigh show proxy
"""


def dump(ns: str, *, sysctls: bool = True) -> dict[str, list[str]]:
    """Everything an ADD may change in `ns`, section by section, one entry per line: links
    (flags, state, mtu; no counters), addresses, routes of every table and both families,
    static neighbours, and (with `sysctls`) every /proc/sys/net value.

    Callers dump once every address has left DAD (settle()). IPv6 addresses of one link are
    listed in the kernel's order (it decides the source address)."""
    script = _DUMP
    if sysctls:
        skip = " ".join(f"'{s}'" for s in VOLATILE_SYSCTLS)
        script += f"echo '## sysctls'; {sys.executable} -I -S -c '{_SYSCTLS}' {skip}\n"
    out = run("sh", "-c", script, ns=ns).stdout
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:], [])
        else:
            current.append(line.rstrip())
    return sections


def diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> str:
    """The lines that differ between two dumps, section by section ("" when none)."""
    lines = []
    for section in sorted(before.keys() | after.keys()):
        b, a = before.get(section, []), after.get(section, [])
        if b != a:
            lines.append(f"## {section}")
            lines += [f"- {x}" for x in b if x not in a]
            lines += [f"+ {x}" for x in a if x not in b]
            if sorted(b) == sorted(a):
                lines.append("  (same lines, different order)")
    return "\n".join(lines)


# --- topology ---------------------------------------------------------------------------------


class Box:
    """A container netns with one veth `ifname` whose peer, in a host netns, holds the gateways.

    Plain: ADDR4/24 and ADDR6/64 (settled as IPAM leaves them), default routes via both
    gateways. `rich` adds what a bounce must put back: a second address of each family (metric,
    label), routes in table 100, routes with metric and mtu, an onlink and a multipath route,
    permanent and proxy neighbours. `up=False`: the link arrives down (host-device), addresses
    on it, no routes. `fast_dad`: the link-local's DAD takes ~0.2 s instead of 1-2 s.
    """

    def __init__(
        self,
        make_netns: Callable[[str], str],
        *,
        ifname: str = "eth0",
        up: bool = True,
        rich: bool = False,
        keep_addr_on_down: bool = False,
        fast_dad: bool = True,
        host: str | None = None,
        ns: str | None = None,
        default_routes: bool = True,
    ) -> None:
        self.host = host or make_netns("lbh")
        self.ns = ns or make_netns("lbc")
        self.ifname = ifname
        self.routed = up and default_routes
        self.peer = unique("lp")
        n = int.from_bytes(os.urandom(1), "big") % 200 + 20
        if ns is not None:  # a second link in an existing box: another subnet
            used = {str(a["local"]) for link in ip_json(ns, "-4", "addr") for a in link.get("addr_info", [])}
            while any(u.startswith(f"10.{n}.") for u in used):
                n = int.from_bytes(os.urandom(1), "big") % 200 + 20
        self.n = n
        self.gw4, self.gw6 = f"10.{n}.0.1", f"fd00:{n}::1"
        self.addrs = [f"10.{n}.0.2/24", f"fd00:{n}::2/64"]
        if rich:
            self.addrs += [f"10.{n}.1.2/24", f"fd00:{n}:1::2/64"]
        c, h, i = self.ns, self.host, ifname
        tmp = unique("lt")
        run("ip", "link", "add", tmp, "type", "veth", "peer", "name", self.peer, "netns", h, ns=c)
        run("ip", "link", "set", tmp, "name", i, ns=c)
        batch(h, [f"addr add {self.gw4}/24 dev {self.peer}", f"addr add {self.gw6}/64 dev {self.peer} nodad",
                  f"link set {self.peer} up"])  # fmt: skip
        if fast_dad:
            # The kernel's DAD of the link-local, shortened from 1-2 s to about 0.2 s (probe
            # interval 200 ms, no random delay): addresses still go tentative at link-up.
            write_sysctl(c, f"net/ipv6/neigh/{i}/retrans_time_ms", "200")
            write_sysctl(c, f"net/ipv6/conf/{i}/router_solicitation_delay", "0")
        if keep_addr_on_down:
            write_sysctl(c, f"net/ipv6/conf/{i}/keep_addr_on_down", "1")
        commands = [] if not up else [f"link set {i} up"]
        commands += [f"addr add {self.addrs[0]} dev {i}"]
        # settled as IPAM leaves them (it waits for DAD), without waiting here: added without
        # DAD, then `change` drops the nodad flag without starting DAD
        commands += [f"addr add {self.addrs[1]} dev {i} nodad", f"addr change {self.addrs[1]} dev {i}"]
        if up and default_routes:
            commands += [f"route add default via {self.gw4}", f"route add default via {self.gw6}"]
        if rich and up:
            commands += [
                f"addr add {self.addrs[2]} dev {i} metric 77 label {i}:x",
                f"addr add {self.addrs[3]} dev {i} metric 88 nodad",
                f"addr change {self.addrs[3]} dev {i} metric 88",
                f"route add 192.0.2.0/24 via {self.gw4} table 100",
                f"route add 2001:db8:1::/64 via {self.gw6} table 100",
                f"route add 198.51.100.0/24 via {self.gw4} metric 50 mtu 1400 advmss 1360",
                f"route add 2001:db8:2::/64 via {self.gw6} metric 50 mtu 1400",
                f"route add 203.0.113.0/24 via 10.{n}.9.9 dev {i} onlink",
                f"route add 198.18.0.0/15 nexthop via {self.gw4} nexthop via 10.{n}.0.3",
                f"neigh add 10.{n}.0.77 lladdr 02:00:00:00:00:77 dev {i} nud permanent",
                f"neigh add fd00:{n}::77 lladdr 02:00:00:00:00:77 dev {i} nud permanent",
                f"neigh add proxy fd00:{n}::88 dev {i}",
            ]
        batch(c, commands)
        if up:
            settle(c, i)

    @property
    def path(self) -> str:
        return netns_path(self.ns)

    def prev_result(self, version: str = "1.0.0", ifnames: list[str] | None = None) -> dict[str, Any]:
        """What the interface-creating plugin before cni-sysctl would have returned."""
        ips: list[dict[str, Any]] = []
        for cidr in self.addrs:
            ip: dict[str, Any] = {"interface": 0, "address": cidr}
            if cidr in self.addrs[:2]:
                ip["gateway"] = self.gw6 if ":" in cidr else self.gw4
            if version.startswith("0."):
                ip["version"] = "6" if ":" in cidr else "4"
            ips.append(ip)
        return {
            "cniVersion": version,
            "interfaces": [{"name": name, "sandbox": self.path} for name in (ifnames or [self.ifname])],
            "ips": ips,
            "routes": [{"dst": "0.0.0.0/0", "gw": self.gw4}, {"dst": "::/0", "gw": self.gw6}] if self.routed else [],
        }


# --- the plugin -----------------------------------------------------------------------------


INSTALL_MODES = ("direct", "daemon")
# The operator's command (explain, policy check, install, daemon): the package's entry point,
# whatever the CNI bin dir holds (in daemon mode the shim there runs no operator commands).
OPERATOR = [sys.executable, "-m", "cni_sysctl"]


def install_plugin(bin_dir: Path | str, mode: str = "direct", socket: str | None = None, fallback: bool = False) -> str:
    """`cni-sysctl install --bin-dir DIR` for the interpreter running the tests: the Python
    launcher (direct), or the shim forwarding to the daemon on `socket` (daemon)."""
    argv = [sys.executable, "-m", "cni_sysctl", "install", "--bin-dir", str(bin_dir), "--mode", mode]
    if mode == "daemon":
        assert socket is not None
        build = subprocess.run(["bash", str(REPO / "shim" / "build.sh")], capture_output=True, text=True, check=False)
        assert build.returncode == 0, f"shim/build.sh failed:\n{build.stderr}"
        argv += ["--socket", socket] + (["--fallback"] if fallback else [])
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 0, f"cni-sysctl install failed:\n{proc.stdout}{proc.stderr}"
    path = os.path.join(str(bin_dir), "cni-sysctl")
    assert os.access(path, os.X_OK)
    return path


class Daemon:
    """`cni-sysctl daemon`, started by a test on a socket in `directory` and stopped by its pid.

    Its one-line-per-call log is `directory`/daemon.log. The socket lives in the test's
    directory, not /run: podman's and containerd's worlds see a /run of their own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = str(directory / "run" / "cni-sysctl.sock")
        self.log = directory / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str, timeout: float = 15.0) -> Daemon:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cni_sysctl", "daemon", "--socket", self.socket, *extra],
                stdout=subprocess.DEVNULL, stderr=log, cwd=REPO,
            )  # fmt: skip
        wait_until("the daemon answers", self.ready, timeout)
        return self

    def ready(self) -> bool:
        from cni_sysctl import daemon

        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
        pid = self.proc.pid
        listening = any(r.get("event") == "listening" and r.get("pid") == pid for r in self.records())
        return listening and daemon.check(self.socket, timeout=2.0) is None  # this one, not an older one

    def stop(self, sig: int = 15, timeout: float = 20.0) -> int | None:
        """Signal the daemon (SIGTERM: drain and exit) and wait for it; SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def records(self) -> list[dict[str, Any]]:
        """The log's lines, parsed."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


def plugin_config(version: str, sysctl: object, prev: dict[str, Any] | None = None, **extra: object) -> dict[str, Any]:
    cfg: dict[str, Any] = {"cniVersion": version, "name": "labnet", "type": "cni-sysctl", "sysctl": sysctl}
    if prev is not None:
        cfg["prevResult"] = prev
    cfg.update(extra)
    return cfg


def cni_env(command: str, netns: str | None, ifname: str = "eth0", container_id: str | None = None) -> dict[str, str]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id or unique("ctr"),
        "CNI_IFNAME": ifname,
        "CNI_PATH": SYSTEM_PLUGINS,
    }
    if netns is not None:
        env["CNI_NETNS"] = netns
    return env


class Outcome:
    """What one plugin call returned: exit code, stdout, stderr, and stdout as JSON."""

    def __init__(self, rc: int, stdout: str, stderr: str) -> None:
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.json: dict[str, Any] = json.loads(stdout) if stdout.strip() else {}

    @property
    def code(self) -> object:
        return self.json.get("code")

    @property
    def msg(self) -> str:
        return str(self.json.get("msg", ""))

    def __repr__(self) -> str:
        return f"Outcome(rc={self.rc}, stdout={self.stdout!r}, stderr={self.stderr[-2000:]!r})"


def exec_plugin(plugin: str, env: dict[str, str], config: dict[str, Any] | bytes, timeout: float = 60) -> Outcome:
    """The installed plugin run as a runtime runs it: this environment only, cwd /."""
    data = config if isinstance(config, bytes) else json.dumps(config).encode()
    proc = subprocess.run([plugin], input=data, env=env, cwd="/", capture_output=True, timeout=timeout, check=False)
    return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode(errors="replace"))


def call_plugin(env: dict[str, str], config: dict[str, Any] | bytes, ports: Any = None) -> Outcome:
    """The plugin run in this process through cli.main(), with `ports` (fault injection). It
    enters the netns itself (setns on this thread) and must return to this one."""
    from cni_sysctl import cli
    from cni_sysctl.netns import identity

    data = config if isinstance(config, bytes) else json.dumps(config).encode()
    out, err = StringIO(), StringIO()
    origin = identity("/proc/thread-self/ns/net")
    rc = cli.main(argv=[], environ=env, stdin=BytesIO(data), stdout=out, stderr=err, ports=ports)
    assert identity("/proc/thread-self/ns/net") == origin, "the plugin did not return this thread to its own netns"
    return Outcome(rc, out.getvalue(), err.getvalue())
