"""Arp's atlas API, shared by the Streamlit app and the notebooks (no Streamlit imports here).

The store names below load lazily, so `import backend.spectra` (say, on a GPU box for a benchmark) needs no LanceDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.store import Atlas, AtlasError, AtlasNotFoundError, SchemaVersionError, open_atlas

__all__ = ["Atlas", "AtlasError", "AtlasNotFoundError", "SchemaVersionError", "open_atlas"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from backend import store

        return getattr(store, name)
    raise AttributeError(f"module 'backend' has no attribute {name!r}")
