"""Deploy fixtures: the node image, built by deploy/image/build.sh with Debian's podman into a
store of the session's own, and the DaemonSet's pods played by privileged podman containers on
a "node" whose host paths are temp dirs.

How a pod is run follows deploy/kubernetes/cni-sysctl.yaml, read here: its image, environment,
privileged flag, memory limit, hostPath and ConfigMap mounts, readiness probe and grace period.
The one change: the socket directory. The DaemonSet mounts the host's /run/cni-sysctl at the
same path, because the shim on the host connects to the path the daemon binds; here that
directory is a temp dir, mounted at its own path, and CNI_SYSCTL_SOCKET says so. hostNetwork is
played by `--network host` inside a throwaway netns (the node's).

Nothing of the machine is changed: podman runs in a private mount namespace with /run, /var/lib
and /dev/shm bind-mounted from the session's temp dir (as in tests/runtime), with vfs storage
and its configuration there too; the ConfigMap is a temp dir laid out as the kubelet lays one
out (the file a symlink into a timestamped directory). Containers are removed by name, the
images of the store and the store itself at the end of the session.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPORT, require_root
from tests.e2e.conftest import cnitool  # noqa: F401 - the fixture, for the tests here
from tests.netlab import REPO, netns_path, unique, wait_until
from tests.runtime.conftest import PRIVATE_MOUNTS, lowered_limit, unavailable

IMAGE_DIR = REPO / "deploy" / "image"
BUILD = IMAGE_DIR / "build.sh"
IMAGE_NAME = (IMAGE_DIR / "NAME").read_text().strip()
MANIFEST = REPO / "deploy" / "kubernetes" / "cni-sysctl.yaml"
EXAMPLES = REPO / "deploy" / "kubernetes" / "examples"
SHIM = REPO / ".build" / "cni-sysctl-shim"
TOOLS = ("podman", "runc", "conmon", "nsenter", "unshare", "mmdebstrap")
BUILD_TIMEOUT = 600  # a fresh machine makes the base rootfs first (mmdebstrap, ~20-40 s)
TIMEOUT = 60


# --- the manifests ------------------------------------------------------------------------------


def load_documents(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert all(isinstance(d, dict) for d in docs), path
    return docs


def manifest() -> dict[str, dict[str, Any]]:
    """deploy/kubernetes/cni-sysctl.yaml by kind (one object of each)."""
    docs = load_documents(MANIFEST)
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), f"several objects of one kind in {MANIFEST}"
    return by_kind


def daemonset_container() -> dict[str, Any]:
    containers = manifest()["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env", [])}


def configmap_policy() -> tuple[str, str]:
    """The policy the ConfigMap holds: (its key, its text)."""
    data = manifest()["ConfigMap"]["data"]
    assert len(data) == 1, data
    key, text = next(iter(data.items()))
    return str(key), str(text)


def mebibytes(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity[:-2])


# --- podman with a store of its own ---------------------------------------------------------------


class Store:
    """podman with its own storage, configuration and runtime state under `tmp`; `self.podman_cmd`
    is a script that runs it so (what build.sh gets as PODMAN)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        for d in ("varlib", "shm", "run", "home", "storage", "runroot", "tmpdir"):
            (tmp / d).mkdir()
        conf = tmp / "containers.conf"
        conf.write_text(
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            'runtime = "runc"\n'
            f'tmp_dir = "{tmp / "tmpdir"}"\n'
        )
        storage = tmp / "storage.conf"
        storage.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp / "storage"}"\nrunroot = "{tmp / "runroot"}"\n'
        )
        self.podman_cmd = tmp / "podman"
        self.podman_cmd.write_text(
            "#!/bin/sh\n"
            "# podman with the store of one test session (tests/deploy/conftest.py)\n"
            f"export CONTAINERS_CONF='{conf}' CONTAINERS_STORAGE_CONF='{storage}' HOME='{tmp / 'home'}' LC_ALL=C\n"
            f"exec unshare --mount -- sh -ec '{PRIVATE_MOUNTS}' sh '{tmp}' podman \"$@\"\n"
        )
        self.podman_cmd.chmod(0o755)

    def podman(
        self, *args: str, netns: str | None = None, timeout: float = TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """`podman ARGS`, in netns `netns` (a name of `ip netns`) when given."""
        argv = [str(self.podman_cmd), *args]
        if netns is not None:
            argv = ["nsenter", f"--net={netns_path(netns)}", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def cleanup(self) -> None:
        self.podman("rm", "--all", "--force", "--time", "0")
        self.podman("rmi", "--all", "--force")


@pytest.fixture(scope="session")
def store() -> Iterator[Store]:
    require_root()
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        unavailable(f"missing {', '.join(missing)}: run tools/bootstrap.sh (Debian packages)")
    # A short path: sockets live under it (conmon's, the daemon's) and are limited to 108 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="cs-img-", dir="/tmp"))
    try:
        st = Store(tmp)
        try:
            yield st
        finally:
            st.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def image(store: Store) -> str:
    """The node image, built by deploy/image/build.sh into the session's store."""
    start = time.monotonic()
    env = {**os.environ, "PODMAN": str(store.podman_cmd), "TMPDIR": str(store.tmp / "tmpdir")}
    proc = subprocess.run(
        ["bash", str(BUILD)], capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"deploy/image/build.sh failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}")
    assert proc.stdout.strip().splitlines()[-1] == IMAGE_NAME, proc.stdout
    size = store.podman("image", "inspect", "--format", "{{.Size}}", IMAGE_NAME)
    assert size.returncode == 0, size.stderr
    REPORT.append(
        f"deploy: build.sh built {IMAGE_NAME} in {time.monotonic() - start:.1f} s, "
        f"{int(size.stdout.strip()) / 1e6:.0f} MB"
    )
    return IMAGE_NAME


# --- a node and the DaemonSet's pods on it ------------------------------------------------------------


def configmap_volume(directory: Path, files: dict[str, str]) -> None:
    """`directory` as the kubelet fills a ConfigMap volume: the data in a timestamped directory,
    `..data` a symlink to it, each key a symlink through `..data`."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns() % 10**9:09d}"
    stamp.mkdir(mode=0o755)
    for key, text in files.items():
        (stamp / key).write_text(text)
        (stamp / key).chmod(0o644)
    (directory / "..data").symlink_to(stamp.name)
    for key in files:
        (directory / key).symlink_to(f"..data/{key}")


class Pod:
    """One pod of the DaemonSet: a podman container of the image, named `name`."""

    def __init__(self, node: Node, name: str) -> None:
        self.node = node
        self.name = name

    def logs(self) -> str:
        proc = self.node.store.podman("logs", self.name)
        return proc.stdout + proc.stderr

    def records(self) -> list[dict[str, Any]]:
        """The daemon's log lines (one JSON object per call or event)."""
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]

    def probe(self) -> subprocess.CompletedProcess[str]:
        """The DaemonSet's readiness probe, run in this container."""
        command = daemonset_container()["readinessProbe"]["exec"]["command"]
        return self.node.store.podman("exec", self.name, *command)

    def wait_ready(self, timeout: float = 30.0) -> float:
        def ready() -> bool:
            if self.state() != "running":
                raise AssertionError(f"pod {self.name} is {self.state()}:\n{self.logs()}")
            return self.probe().returncode == 0

        return wait_until(f"pod {self.name} ready", ready, timeout, step=0.2)

    def state(self) -> str:
        proc = self.node.store.podman("inspect", "--format", "{{.State.Status}}", self.name)
        return proc.stdout.strip() if proc.returncode == 0 else "gone"

    def exit_code(self) -> int:
        proc = self.node.store.podman("inspect", "--format", "{{.State.ExitCode}}", self.name)
        return int(proc.stdout.strip())

    def stop(self) -> subprocess.CompletedProcess[str]:
        """As the kubelet stops it: SIGTERM, SIGKILL after terminationGracePeriodSeconds."""
        grace = manifest()["DaemonSet"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        return self.node.store.podman("stop", "--time", str(grace), self.name, timeout=grace + 30)

    def remove(self) -> None:
        self.node.store.podman("rm", "--force", "--time", "0", self.name)


class Node:
    """A node's host paths (temp dirs under `root`), its netns, and the DaemonSet's pods on it."""

    def __init__(self, store: Store, image: str, root: Path, netns: str) -> None:
        self.store = store
        self.image = image
        self.root = root
        self.netns = netns
        self.pods: list[Pod] = []
        key, self.policy_text = configmap_policy()
        self.configmap = root / "configmap"
        configmap_volume(self.configmap, {key: self.policy_text})
        self.run_dir = root / "run-cni-sysctl"  # the host's /run/cni-sysctl, at its own path
        self.socket = str(self.run_dir / "cni-sysctl.sock")

    def host_path(self, path: str) -> Path:
        """Where this node keeps the host path `path` (/opt/cni/bin -> ROOT/host/opt/cni/bin)."""
        directory = self.root / "host" / path.lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    @property
    def bin_dir(self) -> Path:
        return self.host_path("/opt/cni/bin")

    @property
    def etc_cni(self) -> Path:
        return self.host_path("/etc/cni")

    def set_policy(self, text: str | None) -> None:
        """The node's /etc/cni/cni-sysctl.yaml as an administrator writes it (None: no file);
        the daemon reads it at every call."""
        path = self.etc_cni / "cni-sysctl.yaml"
        if text is None:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_name(".policy.tmp")
        tmp.write_text(text)
        os.chown(tmp, 0, 0)
        tmp.chmod(0o644)
        tmp.replace(path)

    def run_args(self) -> list[str]:
        """`podman run` options for a pod of the DaemonSet on this node (module docstring)."""
        container = daemonset_container()
        spec = manifest()["DaemonSet"]["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        env = container_env(container)
        socket_dir = os.path.dirname(env["CNI_SYSCTL_SOCKET"])
        env["CNI_SYSCTL_SOCKET"] = self.socket
        args = ["--privileged"] if container["securityContext"].get("privileged") else []
        if spec.get("hostNetwork"):
            args += ["--network", "host"]
        args += ["--memory", f"{mebibytes(container['resources']['limits']['memory'])}m"]
        for mount in container["volumeMounts"]:
            volume = volumes[mount["name"]]
            target = mount["mountPath"]
            if "hostPath" in volume:
                if volume["hostPath"]["path"] == socket_dir:
                    self.run_dir.mkdir(exist_ok=True)
                    source = target = str(self.run_dir)
                else:
                    source = str(self.host_path(volume["hostPath"]["path"]))
            else:
                assert volume["configMap"]["name"] == manifest()["ConfigMap"]["metadata"]["name"]
                source = str(self.configmap)
            args += ["--volume", f"{source}:{target}" + (":ro" if mount.get("readOnly") else "")]
        for name, value in env.items():
            args += ["--env", f"{name}={value}"]
        args += [
            "--ulimit", f"nofile={lowered_limit(resource.RLIMIT_NOFILE, 1024)}",
            "--ulimit", f"nproc={lowered_limit(resource.RLIMIT_NPROC, 4096)}",
        ]  # fmt: skip
        return args

    def start(self, wait: bool = True) -> Pod:
        """A new pod of the DaemonSet on this node (beside those already running, as in a surge
        update); waits until the readiness probe passes."""
        assert daemonset_container()["image"] == self.image
        pod = Pod(self, unique("cs-node-"))
        proc = self.store.podman("run", "--detach", "--name", pod.name, *self.run_args(), self.image, netns=self.netns)
        assert proc.returncode == 0, f"podman run failed:\n{proc.stderr}"
        self.pods.append(pod)
        if wait:
            pod.wait_ready()
        return pod

    def run_once(self) -> subprocess.CompletedProcess[str]:
        """A pod whose entrypoint is expected to stop: run in the foreground, removed after."""
        return self.store.podman("run", "--rm", *self.run_args(), self.image, netns=self.netns)

    def cleanup(self) -> None:
        for pod in self.pods:
            pod.remove()


@pytest.fixture
def make_node(store: Store, image: str, make_netns: Callable[[str], str]) -> Iterator[Callable[[str | None], Node]]:
    """Factory of nodes (temp host paths; in netns `netns`, else a new one); their pods are
    removed after the test even on failure, before the netns and the host paths go."""
    made: list[Node] = []

    def make(netns: str | None = None) -> Node:
        # Under the store's short path: the socket's path must stay within 107 bytes.
        root = Path(tempfile.mkdtemp(prefix="node-", dir=store.tmp))
        node = Node(store, image, root, netns or make_netns("dnode"))
        made.append(node)
        return node

    try:
        yield make
    finally:
        for node in made:
            node.cleanup()
            shutil.rmtree(node.root, ignore_errors=True)


@pytest.fixture(scope="session")
def session_node(store: Store, image: str) -> Iterator[Node]:
    """One node shared by the tests that need only a serving pod (test_multus): one pod
    running, which installed the ConfigMap's policy, in a netns of its own; its pod, netns and
    host paths removed at the end of the session (the host paths with the store)."""
    netns = unique("dnode")
    subprocess.run(["ip", "netns", "add", netns], check=True)
    root = Path(tempfile.mkdtemp(prefix="node-", dir=store.tmp))
    node = Node(store, image, root, netns)
    try:
        node.start()
        yield node
    finally:
        node.cleanup()
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
