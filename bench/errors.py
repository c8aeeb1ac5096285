"""The one error the benchmark stops on."""

from __future__ import annotations


class BenchError(Exception):
    """Something the benchmark cannot go on without: the run ends with exit status 1."""
