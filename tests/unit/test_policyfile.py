"""The policy file as an attacker sees it: every way to tamper with it or to make reading it
expensive is refused with code 7 and a message naming the file and the reason.

These tests make files owned by root and by uid 65534, so they need root (as CI has)."""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni_sysctl.errors import CniError, ErrorCode
from cni_sysctl.policy import load
from cni_sysctl.policyfile import MAX_BYTES, PolicyFileError, read

NOBODY = 65534
GOOD = "allow: [net.core.somaxconn]\n"


@pytest.fixture
def trusted_dir(root: None, tmp_path: Path) -> Path:
    d = tmp_path / "cni"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    return d


def policy_at(d: Path, text: str = GOOD, name: str = "cni-sysctl.yaml", mode: int = 0o644) -> Path:
    p = d / name
    p.write_text(text)
    os.chown(p, 0, 0)
    os.chmod(p, mode)
    return p


def refused(path: Path | str) -> PolicyFileError:
    with pytest.raises(PolicyFileError) as info:
        load(str(path))
    assert info.value.code == ErrorCode.INVALID_NETWORK_CONFIG
    assert str(path) in info.value.msg
    return info.value


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail, rather than hang, if reading takes more than 5 s."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError("reading the policy did not return within 5 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(5)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_trusted_file_is_read(trusted_dir: Path) -> None:
    policy = load(str(policy_at(trusted_dir)))
    assert policy is not None
    assert [r.text for r in policy.allow] == ["net.core.somaxconn"]


def test_missing_file_is_none(trusted_dir: Path) -> None:
    assert load(str(trusted_dir / "absent.yaml")) is None


@pytest.mark.parametrize(("mode", "who"), [(0o666, "group and others"), (0o646, "others"), (0o664, "group")])
def test_writable_by_others_is_refused(trusted_dir: Path, mode: int, who: str) -> None:
    err = refused(policy_at(trusted_dir, mode=mode))
    assert f"writable by {who} (mode {mode:04o})" in err.msg
    assert "chmod go-w" in err.details


def test_foreign_owner_is_refused(trusted_dir: Path) -> None:
    p = policy_at(trusted_dir)
    os.chown(p, NOBODY, NOBODY)
    err = refused(p)
    assert f"owned by uid {NOBODY}" in err.msg
    assert f"chown root {p}" in err.details


def test_symlink_is_refused_even_to_a_trusted_file(trusted_dir: Path) -> None:
    target = policy_at(trusted_dir, name="real.yaml")
    link = trusted_dir / "cni-sysctl.yaml"
    link.symlink_to(target)
    assert "symbolic link" in refused(link).msg


def test_world_writable_directory_is_refused(trusted_dir: Path) -> None:
    p = policy_at(trusted_dir)
    os.chmod(trusted_dir, 0o777)
    err = refused(p)
    assert f"directory {trusted_dir} is writable by group and others (mode 0777)" in err.msg


def test_sticky_world_writable_directory_is_refused_as_the_parent(trusted_dir: Path) -> None:
    # /tmp-like: others cannot replace root's file, but may create one if it is ever removed
    p = policy_at(trusted_dir)
    os.chmod(trusted_dir, 0o1777)
    assert "writable by group and others" in refused(p).msg


def test_foreign_directory_is_refused(trusted_dir: Path) -> None:
    p = policy_at(trusted_dir)
    os.chown(trusted_dir, NOBODY, 0)
    assert f"directory {trusted_dir} is owned by uid {NOBODY}" in refused(p).msg


def test_writable_ancestor_is_refused(trusted_dir: Path) -> None:
    inner = trusted_dir / "inner"
    inner.mkdir(mode=0o755)
    p = policy_at(inner)
    os.chmod(trusted_dir, 0o775)
    assert f"directory {trusted_dir} is writable by group" in refused(p).msg


def test_foreign_symlinked_directory_is_refused(trusted_dir: Path) -> None:
    real = trusted_dir / "real"
    real.mkdir(mode=0o755)
    policy_at(real)
    link = trusted_dir / "via"
    link.symlink_to(real)
    os.lchown(link, NOBODY, NOBODY)
    assert f"{link} is a symbolic link owned by uid {NOBODY}" in refused(link / "cni-sysctl.yaml").msg


def test_root_symlinked_directory_is_followed(trusted_dir: Path) -> None:
    real = trusted_dir / "real"
    real.mkdir(mode=0o755)
    policy_at(real)
    link = trusted_dir / "via"
    link.symlink_to(real)
    assert load(str(link / "cni-sysctl.yaml")) is not None


def test_fifo_is_refused_without_blocking(trusted_dir: Path, deadline: None) -> None:
    fifo = trusted_dir / "cni-sysctl.yaml"
    os.mkfifo(fifo, 0o644)
    assert "a FIFO, not a regular file" in refused(fifo).msg


def test_dev_zero_is_refused_without_reading(deadline: None) -> None:
    assert "a character device, not a regular file" in refused("/dev/zero").msg


def test_directory_is_refused(trusted_dir: Path) -> None:
    assert "a directory, not a regular file" in refused(trusted_dir).msg


def test_over_one_mib_is_refused(trusted_dir: Path) -> None:
    p = policy_at(trusted_dir, "#" * MAX_BYTES + "\n")
    assert f"larger than {MAX_BYTES} bytes" in refused(p).msg


def test_exactly_one_mib_is_read(trusted_dir: Path) -> None:
    text = GOOD + "#" * (MAX_BYTES - len(GOOD))
    assert read(str(policy_at(trusted_dir, text))) == text.encode()


def test_yaml_alias_bomb_is_refused_fast(trusted_dir: Path) -> None:
    # Each level references the previous one nine times: 9**9 (387 million) strings if expanded.
    lines = ['a0: &a0 ["1","1","1","1","1","1","1","1","1"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = "\n".join(lines) + "\nallow: [{key: net.core.somaxconn, values: *a9}]\n"
    assert len(text) < 900
    p = policy_at(trusted_dir, text)
    started = time.monotonic()
    err = refused(p)
    assert time.monotonic() - started < 1
    assert "YAML aliases (*a0) are not allowed" in err.msg
    assert f"{p}:2" in err.msg  # the first alias


def test_alias_in_values_is_refused(trusted_dir: Path) -> None:
    p = policy_at(
        trusted_dir, "allow:\n  - key: net.core.somaxconn\n    values: &v ['1']\n  - key: a\n    values: *v\n"
    )
    assert f"{p}:5" in refused(p).msg


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("allow: [net.core.somaxconn]\nallow: []\n", 2, "key 'allow' given twice (first at line 1)"),
        ("allow:\n  - key: net.core.somaxconn\n    key: net.core.*\n", 3, "key 'key' given twice (first at line 2)"),
        ("allow:\n  - key: net.core.somaxconn\n    range: [1, 2]\n    range: [1, 99]\n", 4, "'range' given twice"),
    ],
)
def test_duplicate_keys_are_refused(trusted_dir: Path, text: str, line: int, why: str) -> None:
    p = policy_at(trusted_dir, text)
    err = refused(p)
    assert f"{p}:{line} is invalid" in err.msg
    assert why in err.msg


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("allow: [", "YAML"),
        ("a: 1\n---\nb: 2\n", "single document"),
        ("allow: !!python/object:os.system [x]", "unsupported YAML tag"),
        ("allow: [{key: net.core.somaxconn, values: [!!binary aGk=]}]", "unsupported YAML type"),
        ("allow: [{key: net.core.somaxconn, values: [2001-01-01]}]", "timestamp"),
        ("allow: [{key: net.core.somaxconn, values: [1.5]}]", "fraction"),
        ("allow: [{key: net.core.somaxconn, values: [0600]}]", "decimal"),
        ("allow: [{key: net.core.somaxconn, values: [1:30]}]", "decimal"),
        ("base: &b {key: net.core.somaxconn}\nallow: [{<<: *b}]", "alias"),
        ("allow: [{<<: {key: net.core.somaxconn}}]", "merge keys"),
        ("allow: [{1: x}]", "mapping keys must be strings"),
        ("allow: " + "[" * 40 + "]" * 40, "nested too deeply"),
        ("allow: " + "[" * 5000 + "]" * 5000, "YAML"),
    ],
)
def test_malformed_yaml_is_refused(trusted_dir: Path, text: str, why: str) -> None:
    assert why in refused(policy_at(trusted_dir, text)).msg


def test_non_utf8_is_refused(trusted_dir: Path) -> None:
    p = trusted_dir / "cni-sysctl.yaml"
    p.write_bytes(b"allow: [\xff]\n")
    os.chmod(p, 0o644)
    assert "not UTF-8" in refused(p).msg


def test_unreadable_io_is_code_5(trusted_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An I/O error while reading (EIO from a failing disk) is 5, not 7. os.read is the seam:
    # no regular file can be made to fail this way on demand.
    p = policy_at(trusted_dir)
    real_read = os.read

    def failing(fd: int, n: int) -> bytes:
        if stat.S_ISREG(os.fstat(fd).st_mode) and os.readlink(f"/proc/self/fd/{fd}") == str(p):
            raise OSError(5, "Input/output error")
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", failing)
    with pytest.raises(CniError) as info:
        load(str(p))
    assert info.value.code == ErrorCode.IO_FAILURE
    assert "Input/output error" in info.value.msg
