"""The edge, driven with a dict environment and in-memory streams."""

from __future__ import annotations

import io
import json

import pytest

from cni_sysctl.cli import main

ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/var/run/netns/cni-sysctl-does-not-exist",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}
PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}], "ips": []}


def run(env: dict[str, str], config: object | bytes, argv: list[str] | None = None) -> tuple[int, str, str]:
    data = config if isinstance(config, bytes) else json.dumps(config).encode()
    out, err = io.StringIO(), io.StringIO()
    code = main(argv or [], env, io.BytesIO(data), out, err)
    return code, out.getvalue(), err.getvalue()


def conf(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"cniVersion": "1.0.0", "name": "n", "type": "cni-sysctl", "prevResult": PREV}
    base.update(fields)
    return base


def error_object(out: str) -> dict[str, object]:
    obj = json.loads(out)
    assert set(obj) >= {"cniVersion", "code", "msg"}
    return obj  # type: ignore[no-any-return]


def test_no_command_prints_about_with_versions_on_stderr() -> None:
    code, out, err = run({}, b"")
    assert code == 0
    assert out == ""
    assert "CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_version_command(version: str) -> None:
    code, out, _ = run({"CNI_COMMAND": "VERSION"}, {"cniVersion": version})
    assert code == 0
    assert json.loads(out) == {
        "cniVersion": version,
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }


def test_missing_env_is_code_4_naming_all() -> None:
    code, out, _ = run({"CNI_COMMAND": "ADD"}, conf())
    assert code == 1
    obj = error_object(out)
    assert obj["code"] == 4
    for name in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"):
        assert name in str(obj["msg"])


def test_malformed_json_is_code_6() -> None:
    code, out, _ = run(ENV, b"{oops")
    assert code == 1
    assert error_object(out)["code"] == 6


def test_unsupported_version_is_code_1_in_config_version() -> None:
    code, out, _ = run(ENV, conf(cniVersion="0.2.0"))
    obj = error_object(out)
    assert (code, obj["code"], obj["cniVersion"]) == (1, 1, "0.2.0")


@pytest.mark.parametrize(
    ("key", "code"),
    [("kernel.core_pattern", 7), ("net.ipv6.conf.eth0.accept_ra", 7), ("ipv4.conf../..", 7)],
)
def test_rejected_keys_are_error_objects_before_any_netns_access(key: str, code: int) -> None:
    # CNI_NETNS does not exist: a rejection must come before the plugin tries to enter it.
    rc, out, err = run(ENV, conf(sysctl={key: "1"}))
    obj = error_object(out)
    assert rc == 1
    assert obj["code"] == code
    assert key in str(obj["msg"])
    assert "Traceback" not in err


def test_add_without_prev_result_is_code_7() -> None:
    cfg = conf(sysctl={"net.core.somaxconn": "1"})
    del cfg["prevResult"]
    rc, out, _ = run(ENV, cfg)
    assert (rc, error_object(out)["code"]) == (1, 7)


def test_add_into_missing_netns_is_code_3() -> None:
    rc, out, _ = run(ENV, conf(sysctl={"net.core.somaxconn": "1"}))
    obj = error_object(out)
    assert (rc, obj["code"]) == (1, 3)
    assert "cni-sysctl-does-not-exist" in str(obj["msg"])


def test_untrusted_without_policy_is_code_100() -> None:
    rc, out, _ = run(
        ENV, conf(policy="/nonexistent/cni-sysctl.yaml", runtimeConfig={"sysctl": ["ipv6.conf.accept_ra=0"]})
    )
    obj = error_object(out)
    assert (rc, obj["code"]) == (1, 100)
    assert "ipv6.conf.accept_ra" in str(obj["msg"])
    assert "/nonexistent/cni-sysctl.yaml" in str(obj["msg"])


def test_add_with_nothing_to_write_passes_prev_result_through_converted() -> None:
    rc, out, _ = run(ENV, conf(cniVersion="0.4.0"))
    assert rc == 0
    assert json.loads(out)["cniVersion"] == "0.4.0"


def test_del_succeeds_without_netns_and_prints_nothing() -> None:
    env = dict(ENV, CNI_COMMAND="DEL")
    del env["CNI_NETNS"]
    assert run(env, conf(sysctl={"net.core.somaxconn": "1"}))[:2] == (0, "")


def test_del_with_vanished_netns_succeeds() -> None:
    assert run(dict(ENV, CNI_COMMAND="DEL"), conf())[:2] == (0, "")


def test_check_needs_0_4_0() -> None:
    rc, out, _ = run(dict(ENV, CNI_COMMAND="CHECK"), conf(cniVersion="0.3.1"))
    obj = error_object(out)
    assert (rc, obj["code"]) == (1, 1)
    assert "CHECK" in str(obj["msg"])


@pytest.mark.parametrize("command", ["STATUS", "GC"])
def test_status_and_gc_need_1_1_0(command: str) -> None:
    env = {"CNI_COMMAND": command, "CNI_PATH": "/opt/cni/bin"}
    rc, out, _ = run(env, conf(cniVersion="1.0.0"))
    assert (rc, error_object(out)["code"]) == (1, 1)
    # with 1.1.0 both succeed silently (no policy file: STATUS is ready, GC has no state)
    cfg = conf(cniVersion="1.1.0")
    del cfg["prevResult"]
    assert run(env, cfg)[:2] == (0, "")


def test_status_not_available_with_broken_policy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "p.yaml"
    bad.write_text("allow: [")
    rc, out, _ = run({"CNI_COMMAND": "STATUS"}, conf(cniVersion="1.1.0", policy=str(bad)))
    obj = error_object(out)
    assert (rc, obj["code"]) == (1, 50)
    assert str(bad) in str(obj["msg"])


def test_unexpected_exception_is_999_with_traceback_on_stderr_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import cni_sysctl.commands

    def boom(*a: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cni_sysctl.commands, "cmd_gc", boom)
    rc, out, err = run({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, conf(cniVersion="1.1.0"))
    obj = error_object(out)
    assert (rc, obj["code"]) == (1, 999)
    assert "Traceback" in err
    assert "kaboom" in err
    assert "Traceback" not in out


def test_explain_shows_expanded_writes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "c.json"
    f.write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "n",
                "plugins": [
                    {"type": "bridge"},
                    {"type": "cni-sysctl", "sysctl": ["ipv6.conf.addr_gen_mode=1", "net.core.somaxconn=10"]},
                ],
            }
        )
    )
    code, out, _ = run({}, b"", ["explain", str(f), "--ifname", "eth0.100"])
    assert code == 0
    assert "net/ipv6/conf/eth0.100/addr_gen_mode = 1   [needs link bounce]" in out
    assert "net.core.somaxconn = 10" in out


# -- the policy at the edge: codes for ADD and STATUS, `policy check`, `explain` -------------


def trusted_policy(directory, text: str, mode: int = 0o644) -> str:  # type: ignore[no-untyped-def]
    import os

    p = directory / "cni-sysctl.yaml"
    p.write_text(text)
    os.chown(p, 0, 0)
    os.chmod(p, mode)
    return str(p)


def test_add_with_unreadable_policy_is_code_7(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # a directory where the policy file should be: 7 (it was 50, STATUS's code, before)
    rc, out, _ = run(ENV, conf(policy=str(tmp_path), runtimeConfig={"sysctl": ["net.core.somaxconn=1"]}))
    obj = error_object(out)
    assert (rc, obj["code"]) == (1, 7)
    assert f"policy file {tmp_path} is not trusted: it is a directory" in str(obj["msg"])


def test_add_with_world_writable_policy_is_code_7(root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = trusted_policy(tmp_path, "allow: [net.core.somaxconn]\n", mode=0o666)
    rc, out, _ = run(ENV, conf(policy=path, args={"cni": {"sysctl": ["net.core.somaxconn=1"]}}))
    obj = error_object(out)
    assert (rc, obj["code"]) == (1, 7)
    assert "writable by group and others (mode 0666)" in str(obj["msg"])


def test_add_with_conflist_key_denied_is_code_100_before_the_netns(root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = trusted_policy(tmp_path, "deny: [ipv4.conf.proxy_arp]\n")
    rc, out, _ = run(ENV, conf(policy=path, sysctl=["ipv4.conf.proxy_arp=1"]))
    obj = error_object(out)
    assert (rc, obj["code"]) == (1, 100)  # not 3: the missing netns is never reached
    assert f"policy {path} refuses ipv4.conf.proxy_arp='1' from the conflist (sysctl)" in str(obj["msg"])


def test_status_with_untrusted_policy_is_50(root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = trusted_policy(tmp_path, "allow: []\n", mode=0o646)
    rc, out, _ = run({"CNI_COMMAND": "STATUS"}, conf(cniVersion="1.1.0", policy=path))
    obj = error_object(out)
    assert (rc, obj["code"]) == (1, 50)
    assert f"policy file {path} is not trusted: it is writable by others" in str(obj["msg"])


def test_status_ready_with_a_missing_explicit_policy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # no file: the default set applies, as at ADD
    cfg = conf(cniVersion="1.1.0", policy=str(tmp_path / "absent.yaml"))
    assert run({"CNI_COMMAND": "STATUS"}, cfg)[:2] == (0, "")


def test_policy_check(root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = trusted_policy(
        tmp_path,
        "conflist: checked\ninclude: default\nallow:\n  - key: ipv4.conf.rp_filter\n    values: [0, 1]\n"
        "deny:\n  - ipv4.conf.proxy_arp\n",
    )
    code, out, err = run({}, b"", ["policy", "check", path])
    assert (code, err) == (0, "")
    assert out == (
        f"{path}: trusted and valid\n"
        "  conflist: checked\n"
        "  allow:\n"
        "    line 4: ipv4.conf.rp_filter (values 0, 1)\n"
        "    include: default (the built-in default set)\n"
        "  deny:\n"
        "    line 7: ipv4.conf.proxy_arp\n"
    )


def test_policy_check_refuses_what_add_refuses(root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    path = trusted_policy(tmp_path, "allow: [net.ipv4.conf.eth0.forwarding]\n")
    os.chown(path, 65534, 65534)
    code, out, err = run({}, b"", ["policy", "check", path])
    assert (code, out) == (1, "")
    assert f"ADD would refuse it: error 7: policy file {path} is not trusted: it is owned by uid 65534" in err
    os.chown(path, 0, 0)
    code, _, err = run({}, b"", ["policy", "check", path])
    assert code == 1
    assert f"error 7: policy file {path}:1 is invalid: key pattern 'net.ipv4.conf.eth0.forwarding'" in err
    code, _, err = run({}, b"", ["policy", "check", str(tmp_path / "absent.yaml")])
    assert code == 1
    assert "no file at" in err
    assert run({}, b"", ["policy", "lint", path])[0] == 2


def test_explain_names_the_rule_for_each_key(root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = trusted_policy(
        tmp_path, "allow:\n  - key: net.ipv4.tcp_keepalive_*\n    range: [60, 7200]\n  - ipv6.conf.accept_ra\n"
    )
    code, out, _ = run(
        {},
        b"",
        [
            "explain",
            "--args",
            '{"sysctl": ["net.ipv4.tcp_keepalive_time=600"]}',
            "--runtime-config",
            '{"ipv6.conf.accept_ra": "0"}',
            "--policy",
            path,
            "--ifname",
            "net1",
        ],
    )
    assert code == 0, out
    assert out.splitlines() == [
        f"policy: {path} (conflist: trusted; 2 allow rules, 0 deny rules)",
        "net.ipv4.tcp_keepalive_time = 600   from args.cni.sysctl",
        f"  policy: allowed by allow net.ipv4.tcp_keepalive_* (range [60, 7200]) at {path}:2",
        "  net.ipv4.tcp_keepalive_time = 600   [no bounce]",
        "ipv6.conf.accept_ra = 0   from runtimeConfig.sysctl",
        f"  policy: allowed by allow ipv6.conf.accept_ra (any value) at {path}:4",
        "  net.ipv6.conf.net1.accept_ra = 0   [needs link bounce]",
        "link bounce (auto): net1 set down, written, set up, addresses and routes restored",
        "ADD would write these values.",
        "note: containerd runs CNI ADD before it creates the pod sandbox, so a pod's securityContext.sysctls "
        "(CRI linux.sysctls) on the same key are written after these and win.",
    ]


def test_explain_exits_1_when_add_would_fail(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(
        {},
        b"",
        [
            "explain",
            "--args",
            '["net.ipv4.tcp_keepalive_tim=600", "ipv4.conf.proxy_arp=1", "net.ipv4.tcp_syncookies=1"]',
            "--policy",
            str(tmp_path / "absent.yaml"),
        ],
    )
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"policy: none at {tmp_path / 'absent.yaml'}: per-attachment keys are judged by")
    assert "  kernel: no such sysctl on this machine; did you mean net.ipv4.tcp_keepalive_time?" in lines
    assert (
        "  policy: DENIED: no allow rule in the default set matches net.ipv4.conf.IFNAME.proxy_arp "
        "(per-interface keys are never in the default set)"
    ) in lines
    assert any(line.startswith("  policy: allowed by allow net.ipv4.tcp_syncookies (values 0, 1, 2)") for line in lines)
    fail = lines.index("ADD would fail:")
    assert lines[fail + 1].startswith("  error 100: the built-in default set of Kubernetes' safe sysctls")
    assert (
        lines[fail + 2]
        == "  net.ipv4.tcp_keepalive_tim: no such sysctl on this machine; did you mean net.ipv4.tcp_keepalive_time?"
    )


def test_explain_shows_overrides_and_bad_usage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"cniVersion": "1.0.0", "name": "n", "sysctl": ["net.ipv4.tcp_keepalive_time=600"]}))
    code, out, _ = run(
        {}, b"", ["explain", str(f), '--args=["net.ipv4.tcp_keepalive_time=300"]', "--policy", str(tmp_path / "x")]
    )
    assert code == 1
    assert "  not written: args.cni.sysctl sets it to '300'" in out
    assert "it overrides the conflist's value '600'" in out
    assert run({}, b"", ["explain", "--colour", "red"])[0] == 2
    code, _, err = run({}, b"", ["explain", "--args", "{oops"])
    assert code == 1
    assert "--args: not valid JSON" in err
