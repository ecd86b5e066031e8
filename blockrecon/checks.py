"""Argument checks shared by every layer: each returns the checked value and raises ValueError
naming the argument."""

from __future__ import annotations

import math
import numbers


def check_positive_int(value: object, name: str, allow_zero: bool = False) -> int:
    """``value`` as an int if it is an integer (Python or NumPy, not bool) > 0 (or >= 0)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not (ok and (value >= 0 if allow_zero else value > 0)):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {bound} integer, got {value!r}")
    return int(value)


def check_positive(value: object, name: str, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite real number (not bool) > 0 (or >= 0)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (value >= 0 if allow_zero else value > 0)):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {bound} finite number, got {value!r}")
    return float(value)
