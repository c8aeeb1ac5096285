"""A small results document for the bench unit tests: the figures of bench/results-2026-11-22.txt
(the last run of the single-file bench.py), in the JSON schema of bench/results.py."""

from __future__ import annotations

from bench.results import SCHEMA, Results
from bench.targets import evaluate

CHAINS = {
    # id: label, ADD p50 p90, DEL p50 p90, RSS, CPU, slow
    "a": ("bridge + host-local", 14.6, 64.9, 30.3, 39.3, 7.9, 14.5, 6),
    "b": ("(a) + tuning, 3 sysctls (IFNAME form)", 17.5, 67.7, 31.2, 43.1, 7.9, 17.8, 4),
    "c": ("(a) + cni-sysctl, 3 keys, linkBounce never", 39.4, 89.8, 51.2, 56.0, 10.1, 39.4, 7),
    "d": ("(a) + cni-sysctl, 3 keys + addr_gen_mode=1, auto (bounce)", 67.6, 117.6, 51.0, 56.1, 13.2, 64.3, 11),
    "e": ("(a) + no-op Python plugin (-IS)", 35.1, 85.7, 48.7, 53.8, 9.3, 34.5, 11),
}
ADDED = {
    "b": (3.1, 2.9, 2.0, 1.0),
    "c": (24.7, 24.8, 21.0, 21.0),
    "d": (52.4, 53.0, 20.4, 20.7),
    "e": (20.5, 20.5, 19.5, 18.4),
}
DIRECT = {
    # name: wall p50 p90, CPU p50, RSS
    "sysctl ADD, 3 keys, no bounce": (22.95, 24.12, 22.34, 10.1),
    "sysctl ADD, 4 keys, bounce": (48.16, 50.98, 47.48, 13.2),
    "no-op ADD": (18.52, 19.61, 17.94, 9.2),
    "sysctl DEL": (20.37, 21.38, 19.77, 9.4),
    "no-op DEL": (18.75, 19.92, 18.16, 9.2),
    "sysctl VERSION": (19.11, 20.27, 18.47, 9.2),
    "no-op VERSION": (18.52, 19.63, 17.93, 9.1),
    "sysctl ADD, 1 key, never": (23.30, 24.57, 22.70, 10.2),
    "sysctl ADD, 100 keys, never": (26.85, 29.19, 26.26, 10.1),
}
DIRECT_RATIOS = {
    ("sysctl DEL", "no-op DEL"): (1.09, 1.09, 1.09, 1.09),
    ("sysctl VERSION", "no-op VERSION"): (1.03, 1.02, 1.03, 1.02),
    ("sysctl ADD, 3 keys, no bounce", "no-op ADD"): (1.24, 1.24, 1.24, 1.25),
    ("sysctl ADD, 4 keys, bounce", "no-op ADD"): (2.60, 2.60, 2.65, 2.65),
}
BURSTS = {
    "a": ("bridge + host-local", 357.8, 519.0, 1.45, 297.8, 382.5),
    "c": ("(a) + cni-sysctl, 3 keys, linkBounce never", 939.4, 1227.4, 1.31, 885.5, 976.5),
    "d": ("(a) + cni-sysctl, 3 keys + addr_gen_mode=1, auto (bounce)", 1568.4, 1896.2, 1.21, 880.0, 972.4),
}
IMPORTS = {
    "sysctl VERSION": (9.07, 32, []),
    "sysctl DEL": (10.34, 36, []),
    "sysctl ADD, 3 keys, no bounce": (12.00, 48, []),
    "sysctl ADD, 4 keys, bounce": (24.91, 76, ["pyroute2"]),
    "no-op ADD": (9.20, 29, []),
}


def sample() -> Results:
    results: Results = {
        "schema": SCHEMA,
        "header": {
            "date": "2026-11-22 19:48:41 UTC",
            "command": "python -m bench",
            "machine": {
                "nproc": 2,
                "cpu": "AMD EPYC",
                "virtual": True,
                "os": "Debian GNU/Linux 12 (bookworm)",
                "os_id": "debian",
                "os_version": "12",
                "loadavg": [0.21, 1.28, 1.18],
            },
            "kernel": {"system": "Linux", "release": "6.18.44-fc-v769", "version": "#1 SMP PREEMPT_DYNAMIC @0"},
            "python": {"version": "3.11.2", "interpreter": ["/work/main/.venv/bin/python", "-IS"]},
            "cni_sysctl": {"version": "0.1.0", "repo": "/work/main", "commit": "4a9697e", "uncommitted": 0},
            "libcni": "/work/main/.build/cnitool",
            "plugins": {"package": "containernetworking-plugins", "version": "1.1.1+ds1-3+b5", "dir": "/usr/lib/cni"},
            "method": {"cycles": 30, "burst": 50, "import_runs": 5, "quick": False, "rss_floor_mb": 7.9},
        },
        "chains": [
            {
                "id": cid,
                "label": label,
                "install": "launcher" if cid in "cd" else None,
                "not_measured": None,
                "add": {"p50_ms": a50, "p90_ms": a90},
                "del": {"p50_ms": d50, "p90_ms": d90},
                "rss_mb": rss,
                "cpu_ms": cpu,
                "ok": 30,
                "runs": 30,
                "slow": slow,
            }
            for cid, (label, a50, a90, d50, d90, rss, cpu, slow) in CHAINS.items()
        ],
        "spawns": [
            {
                "id": "f",
                "label": "python -I -c pass (no cnitool)",
                "tagged": True,
                "p50_ms": 25.5,
                "p90_ms": 27.5,
                "rss_mb": 10.2,
                "cpu_ms": 24.6,
                "ok": 30,
                "runs": 30,
            },
            {
                "id": "fS",
                "label": "python -IS -c pass (the launchers' flags)",
                "tagged": False,
                "p50_ms": 8.8,
                "p90_ms": 9.4,
                "rss_mb": 7.9,
                "cpu_ms": 8.3,
                "ok": 30,
                "runs": 30,
            },
            {
                "id": "x",
                "label": "ip netns exec HOST true (in every ADD/DEL above)",
                "tagged": False,
                "p50_ms": 2.5,
                "p90_ms": 2.6,
                "rss_mb": 7.9,
                "cpu_ms": 2.0,
                "ok": 30,
                "runs": 30,
            },
        ],
        "added": [
            {
                "id": cid,
                "label": CHAINS[cid][0],
                "not_measured": None,
                "add": {"paired_ms": add, "of_medians_ms": add_m},
                "del": {"paired_ms": dele, "of_medians_ms": del_m},
            }
            for cid, (add, add_m, dele, del_m) in ADDED.items()
        ],
        "chain_ratios": [
            {"num": "c", "den": "b", "what": "cni-sysctl without bounce vs tuning", "value": 7.92},
            {"num": "c", "den": "e", "what": "cni-sysctl without bounce vs the no-op Python plugin", "value": 1.21},
            {"num": "d", "den": "e", "what": "cni-sysctl with bounce vs the no-op Python plugin", "value": 2.56},
            {"num": "d", "den": "c", "what": "the bounce: with vs without", "value": 2.12},
        ],
        "direct": [
            {
                "name": name,
                "install": None if name.startswith("no-op") else "launcher",
                "command": name.split()[1],
                "not_measured": None,
                "wall": {"p50_ms": p50, "p90_ms": p90},
                "cpu_p50_ms": cpu,
                "rss_mb": rss,
                "ok": 30,
                "runs": 30,
            }
            for name, (p50, p90, cpu, rss) in DIRECT.items()
        ],
        "direct_ratios": [
            {"num": a, "den": b, "wall": {"of_medians": w, "paired": wp}, "cpu": {"of_medians": c, "paired": cp}}
            for (a, b), (w, wp, c, cp) in DIRECT_RATIOS.items()
        ],
        "per_key": {"keys": 100, "wall_ms": 0.036, "cpu_ms": 0.0361},
        "bursts": [
            {
                "id": cid,
                "label": label,
                "not_measured": None,
                "size": 50,
                "add": {"ok": 50, "p50_ms": p50, "p99_ms": p99, "max_ms": p99, "p99_over_p50": ratio},
                "del": {"ok": 50, "p50_ms": d50, "p99_ms": d99},
            }
            for cid, (label, p50, p99, ratio, d50, d99) in BURSTS.items()
        ],
        "imports": {
            "runs": 5,
            "flags": ["-IS"],
            "startup_ms": 2.62,
            "rows": [
                {
                    "name": name,
                    "not_measured": None,
                    "total_ms": total,
                    "modules": modules,
                    "heavy": heavy,
                    "top": [{"module": "json", "ms": 7.34}],
                    "pulled": [{"module": "json", "by": "top level", "ms": 7.34}],
                }
                for name, (total, modules, heavy) in IMPORTS.items()
            ],
        },
        "targets": [],
        "background": [],
        "notes": [],
    }
    results["targets"] = evaluate(results)
    return results
