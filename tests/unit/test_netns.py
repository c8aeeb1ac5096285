"""netns: setns(2) by whichever way this Python has (os.setns on 3.12+, the _ctypes C module on
3.11, the ctypes package as the last resort), built once; CNI_NETNS never opened unless it is a
regular file. Each branch runs in a fresh interpreter and calls setns for real: with a
descriptor that is no namespace the kernel answers EBADF/EINVAL, which proves the call reached it
(entering a real netns needs root: tests/integration does that)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cni_sysctl.errors import CniError, ErrorCode, NetnsNotFoundError
from cni_sysctl.netns import open_netns

CALL = (
    "import errno\n"
    "from cni_sysctl import netns\n"
    "f = netns.setns_function()\n"
    "assert f is netns.setns_function(), 'built once'\n"
    "try:\n"
    "    f(-1, netns.CLONE_NEWNET)\n"
    "except OSError as e:\n"
    "    print(errno.errorcode[e.errno], WHICH)\n"
)


def branch(prelude: str, which: str) -> str:
    code = prelude + "\n" + CALL.replace("WHICH", which)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_os_setns_when_python_has_it() -> None:
    prelude = (
        "import os\n"
        "calls = []\n"
        "def fake(fd, nstype):\n"
        "    calls.append(fd)\n"
        "    raise OSError(9, 'Bad file descriptor')\n"
        "os.setns = fake\n"
    )
    assert branch(prelude, "calls") == "EBADF [-1]"


def test_the_ctypes_c_module_on_3_11() -> None:
    prelude = "import os\nif hasattr(os, 'setns'): del os.setns\nimport _ctypes\n"
    assert branch(prelude, "'_ctypes' in __import__('sys').modules") == "EBADF True"


def test_the_ctypes_package_when_the_c_module_changed_shape() -> None:
    prelude = "import os, ctypes, _ctypes\nif hasattr(os, 'setns'): del os.setns\ndel _ctypes.dlopen\n"
    assert branch(prelude, "'ctypes' in __import__('sys').modules") == "EBADF True"


def test_a_missing_netns_is_not_created(tmp_path: Path) -> None:
    ghost = tmp_path / "ghost"
    with pytest.raises(NetnsNotFoundError, match="does not exist"):
        open_netns(str(ghost))
    assert not ghost.exists()


@pytest.mark.parametrize("kind", ["fifo", "directory", "chardev"])
def test_what_is_not_a_regular_file_is_never_opened(tmp_path: Path, kind: str) -> None:
    path = {"fifo": str(tmp_path / "fifo"), "directory": str(tmp_path), "chardev": "/dev/null"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    start = time.monotonic()
    with pytest.raises(CniError) as info:
        open_netns(path)
    assert time.monotonic() - start < 1, "a FIFO with no writer would block an open without O_NONBLOCK"
    assert info.value.code == ErrorCode.INVALID_ENVIRONMENT
    assert "is not a network namespace file" in info.value.msg
