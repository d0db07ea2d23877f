"""Filters: every SQL string (and its quoting) that Arp sends to LanceDB is written here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def sql_str(value: str) -> str:
    """A string's body for a single-quoted SQL literal (quotes doubled)."""
    return str(value).replace("'", "''")


def sql_literal(value: Any) -> str:
    """One value as a SQL literal: strings quoted safely, floats exactly, bools and ints as they are."""
    if isinstance(value, str):
        return f"'{sql_str(value)}'"
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(int(value))


def sql_list(values: Iterable[Any]) -> str:
    """Render values as a SQL IN-list body, quoting strings safely."""
    return ", ".join(sql_literal(v) for v in values)


def where_eq(column: str, value: Any) -> str:
    """`column = value`."""
    return f"{column} = {sql_literal(value)}"


def where_in(column: str, values: Iterable[Any]) -> str:
    """`column IN (values)` (an empty list matches nothing)."""
    body = sql_list(values)
    return f"{column} IN ({body})" if body else "FALSE"


def where_prefix(column: str, prefix: str) -> str:
    """`column LIKE 'prefix%'` (the prefix may not hold LIKE's wildcards or its escape)."""
    if any(c in prefix for c in "%_\\"):
        raise ValueError(f"prefix {prefix!r} may not contain %, _ or backslash")
    return f"{column} LIKE '{sql_str(prefix)}%'"


def where_at_least(column: str, lo: float) -> str:
    """`column >= lo`."""
    return f"{column} >= {sql_literal(float(lo))}"


def where_at_most(column: str, hi: float) -> str:
    """`column <= hi`."""
    return f"{column} <= {sql_literal(float(hi))}"


def where_between(column: str, lo: float, hi: float) -> str:
    """`lo <= column <= hi`."""
    return f"{where_at_least(column, lo)} AND {where_at_most(column, hi)}"


def where_any(*parts: str | None) -> str | None:
    """The OR of the given conditions (each parenthesised; empty ones skipped), None when there are none."""
    kept = [f"({p})" for p in parts if p]
    return " OR ".join(kept) or None


def where_all(*parts: str | None) -> str | None:
    """The AND of the given conditions (each parenthesised; empty ones skipped), None when there are none."""
    kept = [f"({p})" for p in parts if p]
    return " AND ".join(kept) or None
