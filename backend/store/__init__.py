"""The atlas store: one LanceDB database per atlas (`Atlas`), its errors, write helpers and SQL filters.

Every filter string Arp sends to LanceDB is built in `backend.store.sql`; callers import from `backend.store`.
"""

from __future__ import annotations

from pathlib import Path

from backend.store.atlas import SURVEY_PREFIX, Atlas
from backend.store.connection import connect
from backend.store.errors import (
    AtlasError,
    AtlasNotFoundError,
    DuplicateKeyError,
    MixedSpaceError,
    SchemaVersionError,
)
from backend.store.sql import (
    sql_list,
    sql_literal,
    where_all,
    where_any,
    where_at_least,
    where_at_most,
    where_between,
    where_eq,
    where_in,
    where_prefix,
)
from backend.store.writes import WRITE_BATCH_ROWS, utcnow, with_retry


def open_atlas(uri: str | Path | None = None, *, create: bool = False) -> Atlas:
    """Open the atlas at `uri` (default: `$ARP_ATLAS` or the demo atlas); `create=True` makes it."""
    return Atlas(uri, create=create)


__all__ = [
    "SURVEY_PREFIX",
    "WRITE_BATCH_ROWS",
    "Atlas",
    "AtlasError",
    "AtlasNotFoundError",
    "DuplicateKeyError",
    "MixedSpaceError",
    "SchemaVersionError",
    "connect",
    "open_atlas",
    "sql_list",
    "sql_literal",
    "utcnow",
    "where_all",
    "where_any",
    "where_at_least",
    "where_at_most",
    "where_between",
    "where_eq",
    "where_in",
    "where_prefix",
    "with_retry",
]
