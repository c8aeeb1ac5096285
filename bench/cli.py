"""The edge: arguments, root and prerequisite checks, signals, what goes to stdout and stderr,
and the exit status. The only module that prints (besides a failed teardown in run.cleanup).

    python -m bench [--quick] [--cycles N] [--burst N] [--import-runs N] [--daemon-cycles N] [--json FILE]
    python -m bench report FILE.json             the text report of a saved run, again
    python -m bench readme FILE.json [--check]   README's Performance block from a saved run

Exit status of a run: 0 every target met, 3 some target missed or not measured, 1 the benchmark
could not run, 130 interrupted (Ctrl-C or SIGTERM; everything made is removed first). `report`
and `readme` exit 0, or 1 (unreadable JSON, no markers in README, or --check found a difference).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys

from .errors import BenchError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from .results import Results

EXIT_MET, EXIT_FAILED, EXIT_MISSED, EXIT_INTERRUPTED = 0, 1, 3, 130
DESCRIPTION = "What cni-sysctl costs a container start, measured through the real libcni (issues 4, 10)."
EPILOG = """\
other commands:
  python -m bench report FILE.json             print the text report of a saved run
  python -m bench readme FILE.json [--check]   rewrite README.md's Performance block from a saved run

exit status: 0 every target met, 3 some target missed or not measured, 1 could not run,
130 interrupted. Run from the repository root, as root: sudo .venv/bin/python -m bench
"""


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cycles", type=int, default=None, help="cycles and direct reps (default 30; --quick: 5)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 5 cycles, bursts of 10, 3 importtime runs, 100 daemon memory cycles",
    )
    parser.add_argument("--burst", type=int, default=None, help="concurrent ADDs per burst (default 50; --quick: 10)")
    parser.add_argument(
        "--import-runs", type=int, default=None, help="importtime runs per command (default 5; --quick: 3)"
    )
    parser.add_argument(
        "--daemon-cycles",
        type=int,
        default=None,
        help="ADD/DEL cycles of the daemon memory section (default 1000; --quick: 100)",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write every figure to FILE (results.py describes the schema)"
    )
    return parser


def main(argv: list[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        if args[:1] == ["report"]:
            return cmd_report(args[1:], out)
        if args[:1] == ["readme"]:
            return cmd_readme(args[1:], out, err)
    except BenchError as exc:
        print(f"bench: {exc}", file=err)
        return EXIT_FAILED
    return cmd_run(args, out, err)


def cmd_report(args: list[str], out: TextIO) -> int:
    from . import report, results

    parser = argparse.ArgumentParser(prog="python -m bench report", description="The text report of a saved run.")
    parser.add_argument("json", metavar="FILE.json")
    opts = parser.parse_args(args)
    out.write(report.render(results.read(opts.json)))
    return EXIT_MET


def cmd_readme(args: list[str], out: TextIO, err: TextIO) -> int:
    from . import readme, results

    parser = argparse.ArgumentParser(
        prog="python -m bench readme",
        description="Rewrite the block between <!-- bench:begin --> and <!-- bench:end --> in README.md"
        " from a saved run.",
    )
    parser.add_argument("json", metavar="FILE.json")
    parser.add_argument(
        "--readme", default=os.path.join(readme.REPO, "README.md"), help="default: the repo's README.md"
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the block differs")
    opts = parser.parse_args(args)
    data = results.read(opts.json)
    name = readme.repo_path(opts.json)
    with open(opts.readme) as f:
        text = f.read()
    new = readme.rewrite(text, readme.block(data, name))
    if opts.check:
        if new != text:
            print(f"bench: {opts.readme}: the Performance block differs from what {name} gives", file=err)
            return EXIT_FAILED
        return EXIT_MET
    if not os.path.exists(os.path.join(readme.REPO, readme.text_report(name))):
        print(f"bench: note: {readme.text_report(name)} (named in the block) does not exist", file=err)
    if new != text:
        with open(opts.readme, "w") as f:
            f.write(new)
        print(f"{opts.readme}: Performance block rewritten from {name}", file=out)
    else:
        print(f"{opts.readme}: Performance block already matches {name}", file=out)
    return EXIT_MET


def cmd_run(args: list[str], out: TextIO, err: TextIO) -> int:
    opts = run_parser().parse_args(args)
    cycles = opts.cycles or (5 if opts.quick else 30)
    burst = opts.burst or (10 if opts.quick else 50)
    import_runs = opts.import_runs or (3 if opts.quick else 5)
    daemon_cycles = opts.daemon_cycles or (100 if opts.quick else 1000)

    def progress(msg: str) -> None:
        print(f"bench: {msg}", file=err, flush=True)

    if os.geteuid() != 0:
        progress("run as root (it creates network namespaces): sudo .venv/bin/python -m bench")
        return EXIT_FAILED
    from . import report, results
    from .run import PREREQUISITES, BenchRun, Options

    for path in PREREQUISITES:
        if not os.access(path, os.X_OK):
            progress(f"{path} is missing: run tools/bootstrap.sh")
            return EXIT_FAILED
    if opts.json:
        directory = os.path.dirname(os.path.abspath(opts.json))
        if not os.access(directory, os.W_OK):
            progress(f"--json {opts.json}: cannot write in {directory}")
            return EXIT_FAILED

    def show(data: Results, section: str) -> None:
        out.write(report.section(data, section))
        out.flush()

    command = shlex.join(["python", "-m", "bench", *args])
    signal.signal(signal.SIGTERM, _terminate)
    bench = BenchRun(Options(cycles, burst, import_runs, opts.quick, command, daemon_cycles), progress)
    try:
        bench.setup()
        data = bench.measure(show)
        if opts.json:
            results.write(opts.json, data)
            progress(f"figures written to {opts.json}")
    except KeyboardInterrupt:
        progress("interrupted; cleaning up")
        return EXIT_INTERRUPTED
    except BenchError as exc:
        progress(str(exc))
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        bench.cleanup()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    missed = [t for t in data["targets"] if not t["met"]]
    return EXIT_MISSED if missed else EXIT_MET
