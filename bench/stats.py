"""Medians, nearest-rank percentiles, ratios and paired medians.

None stands for "no value" (nothing was measured) and passes through every function, so a
configuration that could not be measured shows as n/a instead of stopping the report.
"""

from __future__ import annotations

import math
import statistics

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p% of the values <= it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def paired(
    xs: Sequence[float | None], ys: Sequence[float | None], combine: Callable[[float, float], float]
) -> float | None:
    """Median of combine(x_i, y_i) over the positions i where both runs succeeded: x_i and y_i
    come from the same cycle, so drift of the machine cancels."""
    return median([combine(x, y) for x, y in zip(xs, ys) if x is not None and y is not None])


def difference(x: float, y: float) -> float:
    return x - y


def quotient(x: float, y: float) -> float:
    return x / y


def to_ms(seconds: float | None) -> float | None:
    """Seconds -> milliseconds as recorded in the results (to the nanosecond)."""
    return None if seconds is None else round(seconds * 1000, 6)


def to_mb(kilobytes: float | None) -> float | None:
    """ru_maxrss (KiB) -> MiB as recorded in the results."""
    return None if kilobytes is None else round(kilobytes / 1024, 3)


def rounded(value: float | None) -> float | None:
    """A ratio as recorded in the results."""
    return None if value is None else round(value, 6)
