"""Runtime fixtures: Debian's podman (4.3, CNI network backend, runc, cgroupfs) runs a real
container from a busybox-static rootfs, with cni-sysctl installed the way an operator installs it
and chained in a conflist that podman loads from its network_config_dir.

Nothing of the machine is changed:

- network: podman runs inside a throwaway "host" netns, so the bridge, the host-side veths and
  the gateway addresses exist only there;
- files: podman runs in a private mount namespace where directories of the test's temp dir are
  bind-mounted over /run (podman's netns files, runc's state), /var/lib (libcni's result cache,
  which podman puts in /var/lib/cni) and /dev/shm (libpod's lock file);
- configuration: CONTAINERS_CONF and CONTAINERS_STORAGE_CONF name files in the temp dir (podman
  then reads no other containers.conf); storage is vfs under the temp dir, host-local keeps its
  leases there too.

podman enters the host netns with `nsenter --net`, not `ip netns exec`: the latter remounts /sys
in a new mount namespace, which drops the cgroup mounts under /sys/fs/cgroup, and runc then fails
with "no cgroup mount found in mountinfo".
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import netlab
from tests.conftest import IN_CI
from tests.netlab import SYSTEM_PLUGINS, install_plugin, netns_path, run, unique

TOOLS = ("podman", "runc", "conmon", "busybox", "nsenter", "unshare")
APPLETS = ("sh", "cat", "echo", "ip", "ping", "true")
TIMEOUT = 60

# Runs as `sh -ec SCRIPT sh TMP CMD...` in a fresh mount namespace (unshare --mount: private
# propagation, so nothing mounted here reaches the host). -n: no /run/mount/utab bookkeeping.
PRIVATE_MOUNTS = """
t=$1; shift
mount -n --bind "$t/varlib" /var/lib
mount -n --bind "$t/shm" /dev/shm
mount -n --bind "$t/run" /run
exec "$@"
"""


def unavailable(reason: str) -> None:
    """Podman cannot run here: a failure under CI (which must run every test), else a skip."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def lowered_limit(which: int, cap: int) -> str:
    """A `--ulimit` value that lowers (never raises) this process's limit.

    Unasked, podman gives a root container nofile 1048576 and nproc 32768 (it lowers its own
    nproc to that), and runc must then raise the limits it inherited. That needs
    CAP_SYS_RESOURCE, which a sandboxed root may lack: runc fails with "error setting rlimits
    for ready process: error setting rlimit type 7: operation not permitted". Lowering is
    always allowed; the caps stay under podman's own limits.
    """
    soft, _hard = resource.getrlimit(which)
    value = cap if soft == resource.RLIM_INFINITY else min(soft, cap)
    return f"{value}:{value}"


class Podman:
    """One test's podman: a host netns, a temp dir holding all of podman's state, a CNI bin dir
    with cni-sysctl, and a busybox rootfs."""

    def __init__(self, host_ns: str, tmp: Path) -> None:
        self.host = host_ns
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.netconf = tmp / "net.d"
        self.ipam = tmp / "ipam"
        self.rootfs = tmp / "rootfs"
        for d in ("varlib", "shm", "run", "home", "storage", "runroot", "tmpdir", "net.d"):
            (tmp / d).mkdir()
        self.conf = tmp / "containers.conf"
        self.conf.write_text(
            "[network]\n"
            'network_backend = "cni"\n'
            f'cni_plugin_dirs = ["{self.bin}", "{SYSTEM_PLUGINS}"]\n'
            f'network_config_dir = "{self.netconf}"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            'runtime = "runc"\n'
            f'tmp_dir = "{tmp / "tmpdir"}"\n'
        )
        self.storage_conf = tmp / "storage.conf"
        self.storage_conf.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp / "storage"}"\nrunroot = "{tmp / "runroot"}"\n'
        )

    # -- setup ----------------------------------------------------------------------------------
    def install_plugin(self, mode: str, socket: str | None) -> None:
        install_plugin(self.bin, mode, socket)

    def build_rootfs(self) -> None:
        """/bin/busybox (static) and links for the applets the tests use; empty mount points."""
        busybox = shutil.which("busybox")
        assert busybox is not None
        for d in ("bin", "proc", "sys", "dev", "etc", "tmp"):
            (self.rootfs / d).mkdir(parents=True)
        shutil.copy2(busybox, self.rootfs / "bin" / "busybox")
        for applet in APPLETS:
            (self.rootfs / "bin" / applet).symlink_to("busybox")

    # -- podman ---------------------------------------------------------------------------------
    def podman(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """`podman ARGS` in the host netns and the private mount namespace."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(self.tmp / "home"),
            "LC_ALL": "C",
            "CONTAINERS_CONF": str(self.conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
        }
        argv = [
            "nsenter", f"--net={netns_path(self.host)}", "--",
            "unshare", "--mount", "--",
            "sh", "-ec", PRIVATE_MOUNTS, "sh", str(self.tmp),
            "podman", *args,
        ]  # fmt: skip
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)

    def run(self, network: str, script: str) -> subprocess.CompletedProcess[str]:
        """`podman run --rm` of `sh -c SCRIPT` in a new container attached to `network`."""
        return self.podman(
            "run", "--rm", "--name", unique("cs-pm-"),
            "--network", network,
            "--ulimit", f"nofile={lowered_limit(resource.RLIMIT_NOFILE, 1024)}",
            "--ulimit", f"nproc={lowered_limit(resource.RLIMIT_NPROC, 4096)}",
            "--rootfs", str(self.rootfs),
            "sh", "-c", script,
        )  # fmt: skip

    def preflight(self) -> None:
        """Start one container without any CNI network: if that fails, podman cannot run
        containers on this machine at all, whatever cni-sysctl does."""
        proc = self.run("none", "echo podman-ok")
        if proc.returncode != 0 or "podman-ok" not in proc.stdout:
            unavailable(
                "podman cannot start a container on this machine (checked with --network none, "
                f"so without CNI or cni-sysctl): rc {proc.returncode}, stderr:\n{proc.stderr.strip()}"
            )

    def network(self, sysctl: list[str] | None, subnet4: str, subnet6: str | None = None) -> str:
        """A bridge (+ host-local) conflist, followed by cni-sysctl unless `sysctl` is None.
        Returns the network name, after checking that podman loaded the conflist."""
        name = unique("cs-pm-")
        ranges = [[{"subnet": subnet4}]] + ([[{"subnet": subnet6}]] if subnet6 else [])
        routes = [{"dst": "0.0.0.0/0"}] + ([{"dst": "::/0"}] if subnet6 else [])
        plugins: list[dict[str, object]] = [
            {
                "type": "bridge",
                "bridge": unique("cspm"),
                "isGateway": True,
                "ipMasq": False,
                "ipam": {"type": "host-local", "dataDir": str(self.ipam), "ranges": ranges, "routes": routes},
            }
        ]
        if sysctl is not None:
            plugins.append({"type": "cni-sysctl", "sysctl": sysctl, "linkBounce": "auto"})
        doc = {"cniVersion": "1.0.0", "name": name, "plugins": plugins}
        (self.netconf / f"{name}.conflist").write_text(json.dumps(doc, indent=2))
        # podman skips (with only a warning) a conflist that libcni's validation rejects, and
        # `run` then says just "network not found": show the warning instead.
        proc = self.podman("network", "inspect", name)
        assert proc.returncode == 0, f"podman did not load the conflist of {name}:\n{proc.stderr.strip()}"
        return name

    # -- observations ---------------------------------------------------------------------------
    def containers(self) -> list[str]:
        proc = self.podman("ps", "--all", "--quiet")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    def host_links(self) -> dict[str, str]:
        """Links of the host netns: name -> kind ("veth", "bridge", ...)."""
        links = json.loads(run("ip", "-j", "-d", "link", "show", ns=self.host).stdout)
        return {str(li["ifname"]): str(li.get("linkinfo", {}).get("info_kind", "")) for li in links}

    def leases(self, network: str) -> list[str]:
        """Addresses host-local still holds for `network` (its files named after addresses)."""
        d = self.ipam / network
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.name not in ("lock",) and not p.name.startswith("last_reserved"))

    def host_sysctl(self, path: str) -> str:
        return netlab.read_sysctl(self.host, path)

    def cleanup(self) -> None:
        self.podman("rm", "--all", "--force", "--time", "0", timeout=TIMEOUT)


@pytest.fixture
def podman(make_netns: Callable[[str], str], install_mode: str, request: pytest.FixtureRequest) -> Iterator[Podman]:
    """A ready podman world (see the module docstring), removed after the test even on failure:
    containers (podman rm -f), then the host netns (make_netns), then the temp dir."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        unavailable(f"missing {', '.join(missing)}: run tools/bootstrap.sh (Debian packages)")
    # A short path: conmon's attach socket lives under it and a socket path is limited to 108 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="cs-pm-", dir="/tmp"))
    try:
        pm = Podman(make_netns("pmh"), tmp)
        try:
            socket = request.getfixturevalue("daemon").socket if install_mode == "daemon" else None
            pm.install_plugin(install_mode, socket)
            pm.build_rootfs()
            pm.preflight()
            yield pm
        finally:
            pm.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
