"""Install modes: how cni-sysctl sits in the CNI bin dir for the rows that name the mode.

Every cni-sysctl row of scenarios.py names its install mode. A mode is set up once, before the
warm-up, only if some row names it, and torn down at the end on every way out (Ctrl-C and
SIGTERM too, and after a setup that failed half-way). `setup` returns the bin dir that goes
first in those rows' CNI_PATH, holding an executable named `cni-sysctl`.

Today there is one mode, the direct launcher written by `cni-sysctl install --bin-dir`: every
call starts `python -IS`. Daemon mode (docs/daemon.md) will be one more entry in INSTALLS: a
class whose setup runs `cni-sysctl install --mode daemon` into its own bin dir
(`world.path("bin-daemon")`), starts `cni-sysctl daemon --socket PATH` with
`world.spawner.start(...)` (so an interrupted run ends it by pid), waits for the socket and
returns the bin dir; its teardown stops that pid. Its rows are the same chains with
`install="daemon"` (scenarios.CHAINS, DIRECT) and their own target entries (targets.TARGETS).
"""

from __future__ import annotations

import sys
from typing import Protocol

from .spawn import check_output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .world import World


class Install(Protocol):
    """The two hooks of an install mode."""

    name: str

    def setup(self, world: World) -> str:
        """Put an executable `cni-sysctl` into a bin dir and make it ready to serve; return the dir."""

    def teardown(self, world: World) -> None:
        """Stop what setup started (by pid); safe after a partial or failed setup."""


class Launcher:
    """The direct Python launcher, `cni-sysctl install --bin-dir`, in the world's own bin dir
    (beside the no-op plugin), run by this virtualenv's interpreter."""

    name = "launcher"

    def setup(self, world: World) -> str:
        check_output(sys.executable, "-m", "cni_sysctl", "install", "--bin-dir", world.bin_dir)
        return world.bin_dir

    def teardown(self, world: World) -> None:
        """Nothing runs; the launcher goes with the world's temporary directory."""


INSTALLS: dict[str, Callable[[], Install]] = {
    "launcher": Launcher,
}
