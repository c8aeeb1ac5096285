from __future__ import annotations

import pytest

from cni_sysctl.errors import EnvironmentVariableError, ErrorCode
from cni_sysctl.request import read_request

FULL = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "abc123",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
    "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p",
}


def test_full_request() -> None:
    req = read_request(FULL)
    assert (req.command, req.container_id, req.netns, req.ifname) == ("ADD", "abc123", "/var/run/netns/x", "eth0")
    assert req.args == {"IgnoreUnknown": "1", "K8S_POD_NAME": "p"}


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("ADD", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
        ("CHECK", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
        ("DEL", ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]),
        ("GC", ["CNI_PATH"]),
    ],
)
def test_all_missing_variables_named_together(command: str, missing: list[str]) -> None:
    with pytest.raises(EnvironmentVariableError) as info:
        read_request({"CNI_COMMAND": command})
    assert info.value.code == ErrorCode.INVALID_ENVIRONMENT
    assert info.value.msg == f"required environment variables missing: {', '.join(missing)}"


@pytest.mark.parametrize("command", ["VERSION", "STATUS"])
def test_version_and_status_need_only_the_command(command: str) -> None:
    assert read_request({"CNI_COMMAND": command}).command == command


def test_del_without_netns_is_fine() -> None:
    env = dict(FULL, CNI_COMMAND="DEL")
    del env["CNI_NETNS"]
    assert read_request(env).netns == ""


@pytest.mark.parametrize(
    ("var", "value", "text"),
    [
        ("CNI_COMMAND", "FROB", "unknown command 'FROB'"),
        ("CNI_IFNAME", "a/b", "CNI_IFNAME"),
        ("CNI_IFNAME", "x" * 16, "IFNAMSIZ"),
        ("CNI_CONTAINERID", "-bad", "CNI_CONTAINERID"),
        ("CNI_NETNS", "relative/ns", "absolute path"),
        ("CNI_ARGS", "novalue", "KEY=VALUE"),
    ],
)
def test_invalid_variables(var: str, value: str, text: str) -> None:
    with pytest.raises(EnvironmentVariableError) as info:
        read_request(dict(FULL, **{var: value}))
    assert text in info.value.msg
    assert var in info.value.details


def test_placeholders_libcni_sends_with_version_are_ignored() -> None:
    # libcni (podman's conflist validation) calls VERSION with dummy values in the other variables.
    env = {
        "CNI_COMMAND": "VERSION",
        "CNI_NETNS": "dummy",
        "CNI_IFNAME": "dummy",
        "CNI_PATH": "dummy",
        "CNI_CONTAINERID": "",
        "CNI_ARGS": "",
    }
    req = read_request(env)
    assert (req.command, req.netns, req.ifname) == ("VERSION", "", "")
