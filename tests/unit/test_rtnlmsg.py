"""pyroute2's message classes are only used once they decode and encode the kernel's messages
exactly: a mislabelled attribute would be re-sent to the kernel as another one when a link is
restored. Each test runs in a fresh interpreter (the classes are loaded once per process)."""

from __future__ import annotations

import subprocess
import sys

from cni_sysctl import rtnlmsg
from tests.netlab import REPO


def python(code: str, *flags: str) -> str:
    proc = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_installed_pyroute2_passes_the_check_through_the_shortcut() -> None:
    out = python(
        "import sys; from cni_sysctl import rtnlmsg; c = rtnlmsg.load();"
        "print(c.how, repr(rtnlmsg.self_check(c)), 'pyroute2.iproute' in sys.modules)"
    )
    assert out == "shortcut '' False"


def test_a_shifted_attribute_map_fails_the_check() -> None:
    """An nla_map one entry off, as a wrong guess about an old release would make it."""
    classes = rtnlmsg.load()
    base = classes.ifaddrmsg
    names = [entry for entry in base.nla_map if entry[0] != "IFA_LABEL"]  # every later one shifts
    shifted = type("ifaddrmsg", (base,), {"__slots__": (), "nla_map": (*names, ("IFA_EXTRA", "hex"))})
    probe = shifted()
    (getattr(probe, "compile_nla_table", None) or probe.compile_nla)()
    original = classes.ifaddrmsg
    try:
        classes.ifaddrmsg = shifted
        problem = rtnlmsg.self_check(classes)
    finally:
        classes.ifaddrmsg = original
    assert problem.startswith("ifaddrmsg: "), "the shifted map must fail the check"


def test_classes_failing_the_check_are_replaced_by_the_ordinary_import() -> None:
    out = python(
        "from cni_sysctl import rtnlmsg\n"
        "real = rtnlmsg.self_check\n"
        "calls = []\n"
        "def once_wrong(c):\n"
        "    calls.append(c.how)\n"
        "    return 'injected' if len(calls) == 1 else real(c)\n"
        "rtnlmsg.self_check = once_wrong\n"
        "print(rtnlmsg.load().how, calls)\n"
    )
    assert out == "import ['shortcut', 'import']"


def test_no_usable_pyroute2_is_an_installation_error() -> None:
    # isolated and without site-packages: cni_sysctl from the checkout, no pyroute2 at all
    out = python(
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from cni_sysctl import rtnlmsg\n"
        "from cni_sysctl.errors import InstallationError\n"
        "try:\n"
        "    rtnlmsg.load()\n"
        "except InstallationError as e:\n"
        "    print(int(e.code), e.msg)\n",
        "-I",
        "-S",
    )
    assert out.startswith("106 pyroute2 is not importable")


def test_canned_messages_follow_the_kernel_layout() -> None:
    """The canned bytes are built from the UAPI by hand, not by pyroute2: lengths add up."""
    for name, data in rtnlmsg.CANNED.items():
        assert int.from_bytes(data[:4], sys.byteorder) == len(data), name
