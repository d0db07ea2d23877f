"""Arp's atlas API, shared by the Streamlit app and the notebooks (no Streamlit imports here)."""

from backend.store import Atlas, AtlasError, AtlasNotFoundError, SchemaVersionError, open_atlas

__all__ = ["Atlas", "AtlasError", "AtlasNotFoundError", "SchemaVersionError", "open_atlas"]
