"""Every file shipped in deploy/, conflist/ and examples/ is used by a test: the table below
names the test module that reads, runs or deploys it, and that module names the file. A new file
without a test fails here."""

from __future__ import annotations

from pathlib import Path

from tests.netlab import REPO

SHIPPED = ("deploy", "conflist", "examples")
USED_BY = {
    "deploy/image/Containerfile": "tests/deploy/test_manifests.py",  # and built by build.sh
    "deploy/image/NAME": "tests/deploy/conftest.py",
    "deploy/image/build.sh": "tests/deploy/conftest.py",
    "deploy/image/entrypoint.py": "tests/deploy/test_manifests.py",  # and run in test_image
    "deploy/kubernetes/cni-sysctl.yaml": "tests/deploy/conftest.py",
    "deploy/kubernetes/examples/nad-bridge.yaml": "tests/deploy/test_manifests.py",  # and test_multus
    "deploy/kubernetes/examples/nad-macvlan.yaml": "tests/deploy/test_manifests.py",
    "deploy/kubernetes/examples/pod.yaml": "tests/deploy/test_manifests.py",
    "conflist/README.md": "tests/unit/test_conflist_readme.py",
    "conflist/sysctl-bridge.conflist": "tests/e2e/test_rejections.py",
    "conflist/sysctl-host-device.conflist": "tests/e2e/test_chains.py",
    "conflist/sysctl-ipvlan.conflist": "tests/e2e/test_chains.py",
    "conflist/sysctl-macvlan.conflist": "tests/e2e/test_chains.py",
    "conflist/sysctl-ptp.conflist": "tests/e2e/test_chains.py",
    "examples/cni-sysctl-daemon.service": "tests/integration/test_daemon.py",
    "examples/demo.sh": "tests/e2e/test_demo.py",
}


def shipped() -> list[str]:
    return sorted(
        str(p.relative_to(REPO))
        for folder in SHIPPED
        for p in (REPO / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


def test_every_shipped_file_has_a_test_that_names_it() -> None:
    assert shipped() == sorted(USED_BY)
    for name, module in USED_BY.items():
        source = (REPO / module).read_text()
        path = Path(name)
        # by file name, or by stem (load_conflist("sysctl-bridge"))
        assert f'"{path.name}"' in source or f'"{path.stem}"' in source, f"{module} does not name {name}"
