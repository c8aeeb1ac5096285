"""deploy/kubernetes/cni-sysctl.yaml read as the API server would get it (PyYAML), checked
against what the image, the entrypoint and the plugin expect: kinds, mounts and paths, the
image name, the update strategy, the probe, and a policy ADD accepts. The pods it describes are
run in test_image.py and test_multus.py."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cni_sysctl import __version__
from cni_sysctl.config import DEFAULT_POLICY
from cni_sysctl.daemon import DEFAULT_SOCKET
from tests.deploy.conftest import (
    EXAMPLES,
    IMAGE_DIR,
    IMAGE_NAME,
    configmap_policy,
    container_env,
    daemonset_container,
    load_documents,
    manifest,
    mebibytes,
)
from tests.netlab import REPO

pytestmark = pytest.mark.e2e

NAMESPACE = "cni-sysctl"


def entrypoint() -> ModuleType:
    """deploy/image/entrypoint.py, imported (it runs nothing on import)."""
    spec = importlib.util.spec_from_file_location("cni_sysctl_node_entrypoint", IMAGE_DIR / "entrypoint.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = manifest()["DaemonSet"]["spec"]["template"]["spec"]
    return spec


def host_mounts() -> dict[str, str]:
    """hostPath -> where the container mounts it."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    return {
        volumes[m["name"]]["hostPath"]["path"]: m["mountPath"]
        for m in daemonset_container()["volumeMounts"]
        if "hostPath" in volumes[m["name"]]
    }


def test_the_objects_and_how_they_refer_to_each_other() -> None:
    objects = manifest()
    assert list(objects) == ["Namespace", "ServiceAccount", "ConfigMap", "DaemonSet"]
    assert objects["Namespace"]["metadata"]["name"] == NAMESPACE
    assert objects["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    for kind in ("ServiceAccount", "ConfigMap", "DaemonSet"):
        assert objects[kind]["metadata"]["namespace"] == NAMESPACE, kind
    ds = objects["DaemonSet"]
    assert ds["apiVersion"] == "apps/v1"
    assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    spec = pod_spec()
    assert spec["serviceAccountName"] == objects["ServiceAccount"]["metadata"]["name"]
    assert spec["automountServiceAccountToken"] is False
    [policy_volume] = [v for v in spec["volumes"] if "configMap" in v]
    assert policy_volume["configMap"] == {"name": objects["ConfigMap"]["metadata"]["name"], "optional": True}


def test_the_daemonset_runs_one_privileged_ready_pod_on_every_node_and_surges_on_update() -> None:
    ds = manifest()["DaemonSet"]
    spec, container = pod_spec(), daemonset_container()
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert ds["spec"]["updateStrategy"] == strategy
    assert spec["tolerations"] == [{"operator": "Exists"}]  # every taint, every effect
    assert spec["hostNetwork"] is True
    assert "hostPID" not in spec
    assert container["securityContext"] == {"privileged": True}
    assert container["readinessProbe"]["exec"]["command"] == ["/opt/cni-sysctl/bin/cni-sysctl-node", "ready"]
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"memory"}  # no CPU limit on the critical path
    assert mebibytes(resources["requests"]["memory"]) <= mebibytes(resources["limits"]["memory"])
    # The calls in flight end (the daemon's deadline) before the kubelet's SIGKILL.
    timeout = float(container_env(container)["CNI_SYSCTL_REQUEST_TIMEOUT"])
    assert timeout < spec["terminationGracePeriodSeconds"]


def test_the_image_is_the_one_build_sh_tags() -> None:
    container = daemonset_container()
    assert container["image"] == IMAGE_NAME
    assert IMAGE_NAME.rsplit(":", 1)[1] == __version__
    assert container["imagePullPolicy"] == "IfNotPresent"
    containerfile = (IMAGE_DIR / "Containerfile").read_text()
    [entry] = re.findall(r"^ENTRYPOINT (.*)$", containerfile, re.M)
    assert json.loads(entry) == container["readinessProbe"]["exec"]["command"][:1]
    assert re.search(r"^FROM \$\{BASE\}$", containerfile, re.M)
    assert 'image=$(<"$here/NAME")' in (IMAGE_DIR / "build.sh").read_text()


def test_mounts_and_paths_agree_with_the_installer_and_the_daemon() -> None:
    container = daemonset_container()
    env = container_env(container)
    mounts = host_mounts()
    # Exactly these host paths; no netns directory (the shim passes each netns as a descriptor).
    assert set(mounts) == {"/opt/cni/bin", "/run/cni-sysctl", "/etc/cni"}
    # The host's CNI bin dir is where the entrypoint installs the shim.
    assert env["CNI_SYSCTL_BIN_DIR"] == mounts["/opt/cni/bin"]
    # The socket: the daemon's default path, mounted at the same path as on the host, since the
    # shim on the host connects to the path written into it.
    assert env["CNI_SYSCTL_SOCKET"] == DEFAULT_SOCKET
    assert mounts[os.path.dirname(DEFAULT_SOCKET)] == os.path.dirname(DEFAULT_SOCKET)
    # The node's policy: where ADD reads it, at the same path in the pod (the daemon reads it).
    assert mounts[os.path.dirname(DEFAULT_POLICY)] == os.path.dirname(DEFAULT_POLICY)
    # The ConfigMap's key, where the entrypoint looks for it.
    key, _ = configmap_policy()
    [policy_mount] = [m for m in container["volumeMounts"] if m["name"] == "policy"]
    assert policy_mount["readOnly"] is True
    assert env["CNI_SYSCTL_POLICY_SOURCE"] == f"{policy_mount['mountPath']}/{key}"
    # Every setting of the entrypoint is set explicitly, to the entrypoint's own default.
    assert env == entrypoint().SETTINGS


@pytest.mark.root
def test_the_configmap_holds_a_policy_add_accepts(root: None, tmp_path: Path) -> None:
    key, text = configmap_policy()
    directory = tmp_path / "etc-cni"
    directory.mkdir(mode=0o755)
    path = directory / key
    path.write_text(text)
    path.chmod(0o644)
    proc = subprocess.run(
        [sys.executable, "-m", "cni_sysctl", "policy", "check", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "conflist: checked" in proc.stdout
    assert "include: default (the built-in default set)" in proc.stdout
    assert "ipv4.conf.proxy_arp" in proc.stdout


def test_the_examples_are_nads_chaining_cni_sysctl_and_a_pod_selecting_one() -> None:
    docs = {p.name: load_documents(p) for p in sorted(EXAMPLES.glob("*.yaml"))}
    assert sorted(docs) == ["nad-bridge.yaml", "nad-macvlan.yaml", "pod.yaml"]
    nads = {}
    for name in ("nad-bridge.yaml", "nad-macvlan.yaml"):
        [doc] = docs[name]
        assert (doc["apiVersion"], doc["kind"]) == ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition")
        config = json.loads(doc["spec"]["config"])
        assert config["name"] == doc["metadata"]["name"]
        assert [p["type"] for p in config["plugins"]][1:] == ["cni-sysctl"]
        nads[doc["metadata"]["name"]] = config["plugins"][0]["type"]
    assert nads == {"bridge-sysctl": "bridge", "macvlan-sysctl": "macvlan"}
    [pod] = docs["pod.yaml"]
    assert pod["kind"] == "Pod"
    [selection] = json.loads(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"])
    assert selection["name"] in nads
    assert list(selection["cni-args"]) == ["sysctl"]


def test_the_readme_deploys_these_files() -> None:
    readme = (REPO / "README.md").read_text()
    for path in ("deploy/image/build.sh", "deploy/kubernetes/cni-sysctl.yaml", "deploy/kubernetes/examples/"):
        assert path in readme, path
