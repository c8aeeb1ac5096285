"""CRI fixtures: Debian's containerd (1.6, CRI plugin built in) runs pod sandboxes with runc and
calls the CNI chain through go-cni/libcni, as under the kubelet; the tests are the kubelet, a
small gRPC client of ours (cri.proto, stubs generated at test time with grpcio-tools).

One containerd per session and install mode (see `install_mode`), and nothing of the machine is
changed:

- network: containerd runs inside a throwaway "host" netns (`nsenter --net`), so its bridges,
  host-side veths and gateway addresses exist only there; each pod's netns is made by containerd
  under its state dir (`netns_mounts_under_state_dir`);
- files: root, state, socket, config, CNI bin and conf dirs, host-local leases and TMPDIR live in
  one temp dir; containerd runs in a private mount namespace (`unshare --mount`) where temp
  dirs are bind-mounted over /run (the shims' sockets and runc's state, which containerd 1.6
  keeps under /run/containerd whatever its state dir) and /var/lib (libcni's result cache, which
  containerd 1.6 cannot move);
- processes: containerd is stopped by its pid; its shims (containerd-shim-runc-v2 with
  `-address` our socket) and any sandbox process left in the session's cgroup parent are
  killed by pid; the cgroup directories are removed. A shim detaches from containerd when it
  starts; the test process is made a child subreaper for the session, so the shims become its
  children and are reaped here, not left as zombies for init;
- images: the sandbox ("pause") image is built here (tools/pause) and imported with `ctr`;
  nothing is pulled.

Facts of containerd 1.6 these fixtures rely on: it calls CNI ADD before runc creates the
sandbox; `restrict_oom_score_adj = true` is needed where root lacks CAP_SYS_RESOURCE (runc
could not set the sandbox's oom_score_adj -998); it reloads its CNI configuration when the conf
dir changes, and `Status(verbose)` shows which one it has loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests import netlab
from tests.conftest import IN_CI, require_root
from tests.netlab import install_plugin, run, unique

REPO = Path(__file__).resolve().parents[2]
PROTO = Path(__file__).resolve().parent / "cri.proto"
STUBS = REPO / ".build" / "cri-stubs"
PAUSE_BUILD = REPO / "tools" / "pause" / "build.sh"
PAUSE_DIR = REPO / ".build" / "pause"
PAUSE_IMAGE = "localhost/cni-sysctl/pause:1"
SYSTEM_PLUGINS = Path("/usr/lib/cni")
NETNS_DIR = "/var/run/netns"
TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "nsenter", "unshare", "busybox", "gcc")
K8S_NAMESPACE = "k8s.io"
SHIM_COMM = "containerd-shim"  # a process name: containerd-shim-runc-v2, cut to 15 characters
RPC_TIMEOUT = 60.0
START_TIMEOUT = 30.0

# containerd's configuration (version 2). Disabled: plugins that would look at host paths or
# devices (opt would make /opt/containerd). CRI: the pause image of tools/pause; no
# oom_score_adj -998 for the sandbox (root may lack CAP_SYS_RESOURCE); pod netns files under
# the state dir; unprivileged ports and ICMP for pods (sysctls containerd adds to every pod,
# off by default in 1.6, always on in later versions); the native snapshotter (plain directory
# copies, whatever the filesystem).
CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin_dir}"
    conf_dir = "{conf_dir}"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
"""

# Runs as `sh -ec SCRIPT sh TMP CMD...` in a fresh mount namespace (unshare --mount: private
# propagation, so nothing mounted here or by containerd reaches the host). -n: no utab.
PRIVATE_MOUNTS = """
t=$1; shift
mount -n --bind "$t/run" /run
mount -n --bind "$t/varlib" /var/lib
exec "$@"
"""

# A CNI plugin of the tests that passes prevResult through and appends what it was given (the
# CNI_* environment and its stdin) as one JSON line to the file named by its config's
# "record": what containerd hands a plugin, observed rather than assumed.
RECORDER_NAME = "cs-record"
RECORDER = """\
#!{python} -IS
import json, os, sys
conf = json.load(sys.stdin)
command = os.environ.get("CNI_COMMAND", "")
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
if "record" in conf:
    with open(conf["record"], "a") as f:
        f.write(json.dumps({{"command": command, "env": env, "config": conf}}) + "\\n")
if command == "ADD":
    result = dict(conf.get("prevResult") or {{}})
    result["cniVersion"] = conf["cniVersion"]
    sys.stdout.write(json.dumps(result))
elif command == "VERSION":
    versions = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]
    sys.stdout.write(json.dumps({{"cniVersion": conf.get("cniVersion", "1.0.0"), "supportedVersions": versions}}))
"""


def unavailable(reason: str) -> NoReturn:
    """The CRI world cannot run here: a failure under CI (which must run every test), else a skip."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


# -- the CRI client ------------------------------------------------------------------------------


class CriError(Exception):
    """A CRI call that failed: the gRPC status code name and containerd's message."""

    def __init__(self, method: str, code: str, details: str) -> None:
        super().__init__(f"{method}: {code}: {details}")
        self.method = method
        self.code = code
        self.details = details


class CriApi:
    """The generated messages and a channel to one containerd's CRI services.

    grpc and the generated modules are imported at run time (the stubs do not exist before the
    session generates them), so they are typed Any here and every call goes through `call`.
    """

    def __init__(self, socket: Path) -> None:
        self.grpc: Any = importlib.import_module("grpc")
        self.pb: Any = importlib.import_module("cri_pb2")
        services: Any = importlib.import_module("cri_pb2_grpc")
        self.channel: Any = self.grpc.insecure_channel(f"unix:{socket}")
        self.runtime: Any = services.RuntimeServiceStub(self.channel)
        self.images: Any = services.ImageServiceStub(self.channel)

    def call(self, method: str, request: Any, *, service: str = "runtime", timeout: float = RPC_TIMEOUT) -> Any:
        stub = self.runtime if service == "runtime" else self.images
        try:
            return getattr(stub, method)(request, timeout=timeout)
        except self.grpc.RpcError as exc:
            raise CriError(method, exc.code().name, exc.details() or "") from None

    def close(self) -> None:
        self.channel.close()


@pytest.fixture(scope="session")
def cri_stubs() -> None:
    """Python stubs of tests/cri/cri.proto in .build/cri-stubs, importable as cri_pb2 and
    cri_pb2_grpc; regenerated when the proto is newer."""
    require_root()
    try:
        importlib.import_module("grpc_tools.protoc")
    except ImportError:
        unavailable("grpcio-tools is not installed: run tools/bootstrap.sh (pip install -e .[test])")
    target = STUBS / "cri_pb2_grpc.py"
    if not target.exists() or target.stat().st_mtime < PROTO.stat().st_mtime:
        STUBS.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [
                sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}",
                f"--python_out={STUBS}", f"--grpc_python_out={STUBS}", PROTO.name,
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, f"grpc_tools.protoc failed:\n{proc.stderr}"
    if str(STUBS) not in sys.path:
        sys.path.insert(0, str(STUBS))


@pytest.fixture(scope="session")
def pause_image() -> Path:
    """.build/pause/pause.tar: the sandbox image (tools/pause), built when missing or stale."""
    require_root()
    proc = subprocess.run(
        ["bash", str(PAUSE_BUILD), str(PAUSE_DIR), PAUSE_IMAGE], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"tools/pause/build.sh failed:\n{proc.stderr}"
    return PAUSE_DIR / "pause.tar"


# -- the plugin in the CNI bin dir ---------------------------------------------------------------


class PluginInstall:
    """cni-sysctl as one install mode put it into a CNI bin dir."""

    def __init__(self, mode: str, bin_dir: Path) -> None:
        self.mode = mode
        self.bin_dir = bin_dir


@contextlib.contextmanager
def installed_plugin(mode: str, bin_dir: Path, tmp: Path) -> Iterator[PluginInstall]:
    """Install cni-sysctl into `bin_dir` the way `mode` does (tests/netlab.INSTALL_MODES),
    undone on exit: in daemon mode a daemon of its own, stopped by its pid. Its socket is under
    `tmp`, not /run: containerd, and so the shim it runs, sees a private /run."""
    daemon = None
    if mode == "daemon":
        (tmp / "daemon").mkdir()
        daemon = netlab.Daemon(tmp / "daemon").start()
    try:
        install_plugin(bin_dir, mode, daemon.socket if daemon is not None else None)
        yield PluginInstall(mode, bin_dir)
    finally:
        if daemon is not None:
            daemon.stop()


# -- containerd ----------------------------------------------------------------------------------


class Pod:
    """One running pod sandbox: its id, the pid of its pause process and its addresses. Commands
    run in its netns with `nsenter --target PID --net`."""

    def __init__(self, sandbox_id: str, pid: int, netns_path: str, ips: list[str]) -> None:
        self.id = sandbox_id
        self.pid = pid
        self.netns_path = netns_path
        self.ips = ips

    @property
    def ns(self) -> str:
        return f"pid:{self.pid}"

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return netlab.run(*cmd, ns=self.ns, check=check)

    # The lab's queries (tests/netlab.py), in the pod's netns.
    def sysctl(self, path: str) -> str:
        return netlab.read_sysctl(self.ns, path)

    def addresses(self, ifname: str = "eth0") -> set[str]:
        """Global addresses of `ifname`, without prefix length."""
        return {a.split("/")[0] for a in netlab.addresses(self.ns, ifname)}

    def link_local(self, ifname: str = "eth0") -> set[str]:
        return netlab.link_locals(self.ns, ifname)

    def tentative(self, ifname: str = "eth0") -> set[str]:
        return {a.split("/")[0] for a in netlab.tentative(self.ns, ifname)}

    def link_up(self, ifname: str = "eth0") -> bool:
        return netlab.is_up(self.ns, ifname)

    def default_gateways(self, ifname: str = "eth0") -> set[str]:
        return netlab.default_gateways(self.ns, ifname)

    def ping(self, address: str) -> bool:
        return netlab.ping(self.ns, address)


class Network:
    """A conflist loaded into containerd: bridge (+ host-local) and the plugins after it."""

    def __init__(self, name: str, bridge: str, subnet4: str, subnet6: str) -> None:
        self.name = name
        self.bridge = bridge
        self.subnet4 = subnet4
        self.subnet6 = subnet6
        self.gateway4 = subnet4.rsplit(".", 1)[0] + ".1"
        self.gateway6 = subnet6.split("/", maxsplit=1)[0] + "1"


class Containerd:
    """One containerd with the CRI plugin, in its own host netns, temp dir and mount namespace."""

    def __init__(self, install: PluginInstall, tmp: Path, host_ns: str) -> None:
        self.install = install
        self.tmp = tmp
        self.host = host_ns
        self.bin_dir = install.bin_dir
        self.conf_dir = tmp / "net.d"
        self.ipam = tmp / "ipam"
        self.records = tmp / "records"
        self.state = tmp / "state"
        self.socket = tmp / "c.sock"
        self.cgroup_parent = f"/cs-cri-{uuid.uuid4().hex[:8]}"
        for d in ("root", "state", "run", "varlib", "tmp", "net.d", "ipam", "records"):
            (tmp / d).mkdir(exist_ok=True)
        self.config = tmp / "config.toml"
        self.log = tmp / "containerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.shim_pids: set[int] = set()
        self._subnets = 0
        self.api: CriApi | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def write_config(self) -> None:
        self.config.write_text(
            CONFIG.format(
                root=self.tmp / "root",
                state=self.state,
                socket=self.socket,
                sandbox_image=PAUSE_IMAGE,
                bin_dir=self.bin_dir,
                conf_dir=self.conf_dir,
            )
        )

    def start(self) -> None:
        self.write_config()
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "TMPDIR": str(self.tmp / "tmp"),
        }
        argv = [
            "nsenter", f"--net={NETNS_DIR}/{self.host}", "--",
            "unshare", "--mount", "--",
            "sh", "-ec", PRIVATE_MOUNTS, "sh", str(self.tmp),
            "containerd", "--config", str(self.config),
        ]  # fmt: skip
        with self.log.open("wb") as log:
            # nsenter, unshare and sh exec: the Popen's pid is containerd's.
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.api = CriApi(self.socket)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"containerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.cri("Version", self.pb.VersionRequest(version="v1"), timeout=1.0)
                break
            except CriError as exc:
                if time.monotonic() > deadline:
                    message = f"containerd's CRI did not answer in {START_TIMEOUT}s:\n{self.log_tail()}"
                    raise AssertionError(message) from exc
                time.sleep(0.1)

    def import_pause_image(self, tar: Path) -> None:
        run("ctr", "--address", str(self.socket), "-n", K8S_NAMESPACE, "images", "import", "--snapshotter", "native",
            str(tar))  # fmt: skip
        # The CRI plugin learns about the image from containerd's events: wait until it has it,
        # or RunPodSandbox would try to pull it.
        spec = self.pb.ImageSpec(image=PAUSE_IMAGE)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.cri("ImageStatus", self.pb.ImageStatusRequest(image=spec), service="image").HasField("image"):
            assert time.monotonic() < deadline, f"the CRI plugin never saw {PAUSE_IMAGE}:\n{self.log_tail()}"
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def remember_shims(self) -> None:
        """Note the pids of the shims serving this containerd: running ones by their -address
        (our socket), exited ones as our zombie children (we are their subreaper); reap the
        exited ones."""
        marker = f"-address\0{self.socket}\0".encode()
        me = os.getpid()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                comm, ppid = proc_comm_and_ppid(int(entry.name))
            except OSError:
                continue
            ours = marker in cmdline or ppid == me
            if comm.startswith(SHIM_COMM) and ours:
                self.shim_pids.add(int(entry.name))
        for pid in list(self.shim_pids):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    self.shim_pids.discard(pid)
            except ChildProcessError:
                if not Path(f"/proc/{pid}").exists():
                    self.shim_pids.discard(pid)

    def cgroup_dirs(self) -> list[Path]:
        return [d / self.cgroup_parent.lstrip("/") for d in Path("/sys/fs/cgroup").iterdir() if d.is_dir()]

    def stop(self) -> None:
        """Remove every sandbox, stop containerd by its pid, then kill by pid whatever it left:
        its shims and any process in the session's cgroup parent; remove those cgroups."""
        if self.api is not None:
            with contextlib.suppress(CriError):
                for pod in self.sandbox_ids():
                    self.remove_pod(pod)
            self.remember_shims()
            self.api.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # With containerd gone, a shim still running serves nothing: give the shims a moment to
        # exit on their own (they do once their sandbox is deleted), then kill them; then any
        # sandbox process left in our cgroups (re-parented to us when its shim died).
        self.remember_shims()
        reap(self.shim_pids, timeout=5.0, comm_prefix=SHIM_COMM)
        leftovers = set(self.cgroup_procs())
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        reap(leftovers, timeout=5.0, comm_prefix="")
        for directory in self.cgroup_dirs():
            remove_cgroup(directory)

    # -- CRI -------------------------------------------------------------------------------------
    @property
    def pb(self) -> Any:
        assert self.api is not None
        return self.api.pb

    def cri(self, method: str, request: Any, *, service: str = "runtime", timeout: float = RPC_TIMEOUT) -> Any:
        assert self.api is not None
        return self.api.call(method, request, service=service, timeout=timeout)

    def version(self) -> Any:
        return self.cri("Version", self.pb.VersionRequest(version="v1"))

    def status(self) -> Any:
        return self.cri("Status", self.pb.StatusRequest(verbose=True))

    def sandbox_ids(self) -> list[str]:
        return [str(item.id) for item in self.cri("ListPodSandbox", self.pb.ListPodSandboxRequest()).items]

    def pod_config(
        self,
        name: str,
        *,
        sysctls: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        port_mappings: list[tuple[int, int]] | None = None,
        dns_servers: list[str] | None = None,
    ) -> Any:
        pb = self.pb
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=str(uuid.uuid4()), namespace="cni-sysctl-e2e", attempt=0),
            hostname=name,
            labels={"app": "cni-sysctl-e2e"},
            annotations=annotations or {},
            port_mappings=[
                pb.PortMapping(protocol=pb.TCP, container_port=container, host_port=host)
                for host, container in port_mappings or []
            ],
            dns_config=pb.DNSConfig(servers=dns_servers) if dns_servers else None,
            linux=pb.LinuxPodSandboxConfig(cgroup_parent=self.cgroup_parent, sysctls=sysctls or {}),
        )

    def run_pod(self, config: Any) -> Pod:
        """RunPodSandbox, which must succeed; the pod's pid, netns and addresses from its status."""
        sandbox_id = str(self.cri("RunPodSandbox", self.pb.RunPodSandboxRequest(config=config)).pod_sandbox_id)
        self.remember_shims()
        resp = self.pod_status(sandbox_id)
        info = json.loads(resp.info["info"])
        netns = [n.get("path", "") for n in info["runtimeSpec"]["linux"]["namespaces"] if n["type"] == "network"]
        network = resp.status.network
        ips = [str(network.ip)] + [str(extra.ip) for extra in network.additional_ips]
        return Pod(sandbox_id, int(info["pid"]), netns[0], ips)

    def pod_status(self, sandbox_id: str) -> Any:
        return self.cri("PodSandboxStatus", self.pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True))

    def stop_pod(self, sandbox_id: str) -> None:
        self.cri("StopPodSandbox", self.pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    def remove_pod(self, sandbox_id: str) -> None:
        """StopPodSandbox then RemovePodSandbox, as the kubelet does."""
        self.stop_pod(sandbox_id)
        self.cri("RemovePodSandbox", self.pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    # -- CNI configuration -----------------------------------------------------------------------
    def network(self, after_bridge: list[dict[str, Any]]) -> Network:
        """Make a bridge (+ host-local, IPv4 and IPv6) conflist followed by `after_bridge` the one
        containerd uses, and wait until containerd has loaded it. Each network gets its own
        bridge and subnets, so no address of an earlier test can answer for a later one."""
        self._subnets += 1
        n = self._subnets
        net = Network(unique("cs-cri-"), unique("cscri"), f"10.87.{n}.0/24", f"fd00:87:{n}::/64")
        bridge: dict[str, Any] = {
            "type": "bridge",
            "bridge": net.bridge,
            "isGateway": True,
            "ipMasq": False,
            "ipam": {
                "type": "host-local",
                "dataDir": str(self.ipam),
                "ranges": [[{"subnet": net.subnet4}], [{"subnet": net.subnet6}]],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
            },
        }
        doc = {"cniVersion": "1.0.0", "name": net.name, "plugins": [bridge, *after_bridge]}
        for old in self.conf_dir.iterdir():
            old.unlink()
        # containerd reads *.conflist only: write under another name, then rename into place.
        staged = self.conf_dir / f"{net.name}.tmp"
        staged.write_text(json.dumps(doc, indent=2))
        staged.rename(self.conf_dir / f"{net.name}.conflist")
        deadline = time.monotonic() + START_TIMEOUT
        while self.loaded_network() != net.name:
            assert time.monotonic() < deadline, f"containerd did not load {net.name}:\n{self.log_tail()}"
            time.sleep(0.05)
        return net

    def loaded_network(self) -> str | None:
        """The name of the pod network containerd would use now (go-cni's networks: loopback first)."""
        info = self.status().info
        networks = json.loads(info.get("cniconfig", "{}")).get("Networks") or []
        names = [n["Config"]["Name"] for n in networks if n.get("IFName") != "lo"]
        return str(names[0]) if names else None

    # -- observations ----------------------------------------------------------------------------
    def netns_files(self) -> list[str]:
        """Pod netns files containerd holds (under its state dir)."""
        d = self.state / "io.containerd.grpc.v1.cri" / "netns"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def host_links(self) -> dict[str, str]:
        """Links of the host netns: name -> kind ("veth", "bridge", ...)."""
        links = json.loads(run("ip", "-n", self.host, "-j", "-d", "link", "show").stdout)
        return {str(li["ifname"]): str(li.get("linkinfo", {}).get("info_kind", "")) for li in links}

    def host_veths(self) -> list[str]:
        return sorted(name for name, kind in self.host_links().items() if kind == "veth")

    def host_sysctl(self, path: str) -> str:
        return netlab.read_sysctl(self.host, path)

    def leases(self, net: Network) -> list[str]:
        """Addresses host-local still holds for `net` (its files are named after addresses)."""
        d = self.ipam / net.name
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.name != "lock" and not p.name.startswith("last_reserved"))

    def cni_cache(self) -> list[str]:
        """libcni's cached results (in the private /var/lib, i.e. tmp/varlib)."""
        d = self.tmp / "varlib" / "cni" / "results"
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []

    def cgroup_procs(self) -> list[int]:
        """Processes still in the session's cgroup parent (sandboxes that outlived their pod)."""
        pids: set[int] = set()
        for directory in self.cgroup_dirs():
            for procs in directory.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
        return sorted(pids)

    def recorder(self, name: str) -> tuple[dict[str, Any], Path]:
        """A conflist entry for the recording plugin, and the file it will append to."""
        path = self.records / f"{name}.jsonl"
        return {"type": RECORDER_NAME, "record": str(path)}, path


PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


@contextlib.contextmanager
def child_subreaper() -> Iterator[None]:
    """Make this process the child subreaper (prctl) inside the block: processes orphaned by
    its descendants (the shims containerd starts) are re-parented to it, not to init."""
    libc = ctypes.CDLL(None, use_errno=True)
    before = ctypes.c_int(0)
    if libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(before), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_GET_CHILD_SUBREAPER)")
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, before.value, 0, 0, 0)


def reap(pids: set[int], timeout: float, comm_prefix: str) -> None:
    """Wait for `pids`, children of ours by re-parenting, to exit and reap them; SIGKILL those
    still running a `comm_prefix` process after `timeout`. A pid that is not our child is left
    alone."""
    waiting = set(pids)
    deadline = time.monotonic() + timeout
    killed = False
    while waiting:
        for pid in list(waiting):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    waiting.discard(pid)
            except ChildProcessError:
                waiting.discard(pid)
        if waiting and time.monotonic() > deadline:
            if killed:
                return
            for pid in waiting:
                kill_if_alive(pid, comm_prefix)
            killed = True
            deadline = time.monotonic() + timeout
        time.sleep(0.02)


def proc_comm_and_ppid(pid: int) -> tuple[str, int]:
    """A process's name (at most 15 characters) and parent pid, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    return comm, int(stat[stat.rindex(")") + 2 :].split()[1])


def kill_if_alive(pid: int, comm_prefix: str) -> None:
    """SIGKILL `pid` if it is still a live process whose name starts with `comm_prefix` (a pid
    noted earlier may have been reused by then)."""
    try:
        comm, _ppid = proc_comm_and_ppid(pid)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return
    if comm.startswith(comm_prefix) and state != "Z":
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def remove_cgroup(directory: Path) -> None:
    """rmdir a cgroup directory and its children, deepest first (a cgroup is removed by rmdir,
    its control files go with it)."""
    if not directory.is_dir():
        return
    for child in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        directory.rmdir()


def write_recorder(bin_dir: Path) -> None:
    path = bin_dir / RECORDER_NAME
    path.write_text(RECORDER.format(python=sys.executable))
    path.chmod(0o755)


@contextlib.contextmanager
def host_netns() -> Iterator[str]:
    """A throwaway "host" network namespace with lo up, deleted on exit."""
    name = unique("crih")
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        run("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.fixture(scope="session")
def containerd(install_mode: str, cri_stubs: None, pause_image: Path) -> Iterator[Containerd]:
    """A running containerd (CRI) for the session and install mode, with the pause image
    imported, cni-sysctl, the recording plugin and Debian's plugins in its CNI bin dir.
    Everything is undone afterwards, even on failure: sandboxes, containerd and its shims (by
    pid), cgroups, the host netns, the temp dir."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        unavailable(f"missing {', '.join(missing)}: run tools/bootstrap.sh (Debian packages)")
    # A short path: the socket's path is limited to 108 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="cs-cri-", dir="/tmp"))
    try:
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for plugin in SYSTEM_PLUGINS.iterdir():
            (bin_dir / plugin.name).symlink_to(plugin)
        write_recorder(bin_dir)
        with child_subreaper(), host_netns() as host, installed_plugin(install_mode, bin_dir, tmp) as install:
            world = Containerd(install, tmp, host)
            try:
                world.start()
                world.import_pause_image(pause_image)
                yield world
            finally:
                world.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class PodsOfOneTest:
    """The session's containerd as one test uses it: the pods it starts are removed after it
    (before the next test changes the CNI configuration), and so is its bridge."""

    def __init__(self, world: Containerd) -> None:
        self.world = world
        self.pods: list[str] = []
        self.networks: list[Network] = []

    def network(self, after_bridge: list[dict[str, Any]]) -> Network:
        net = self.world.network(after_bridge)
        self.networks.append(net)
        return net

    def run_pod(self, name: str | None = None, **kw: Any) -> Pod:
        config = self.world.pod_config(name or unique("pod-"), **kw)
        try:
            pod = self.world.run_pod(config)
        finally:
            # A failed RunPodSandbox leaves no sandbox; a succeeded one is listed: remember all.
            with contextlib.suppress(CriError):
                self.pods.extend(i for i in self.world.sandbox_ids() if i not in self.pods)
            self.world.remember_shims()
        return pod

    def cleanup(self) -> None:
        for sandbox_id in self.pods:
            with contextlib.suppress(CriError):
                self.world.remove_pod(sandbox_id)
        for net in self.networks:
            run("ip", "-n", self.world.host, "link", "del", net.bridge, check=False)


@pytest.fixture
def cri(containerd: Containerd) -> Iterator[PodsOfOneTest]:
    pods = PodsOfOneTest(containerd)
    try:
        yield pods
    finally:
        pods.cleanup()
