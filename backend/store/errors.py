"""Errors an atlas raises, each with a message the user can act on."""

from __future__ import annotations

import re


class AtlasError(RuntimeError):
    """A problem with an atlas that the user can act on (the message says how)."""


class AtlasNotFoundError(AtlasError):
    """No atlas exists at the given URI."""


class SchemaVersionError(AtlasError):
    """The atlas was written with another schema version than this code reads."""


class MixedSpaceError(AtlasError):
    """A write would mix vectors from different encoders/weights/preprocessing in one space."""


def one_line(exc: BaseException) -> str:
    """An exception as one short line, without the Rust source locations Lance appends (server paths)."""
    text = re.sub(r",?\s*\S+\.rs:\d+(:\d+)?", "", " ".join(str(exc).split()))
    return text[:200] or type(exc).__name__


class DuplicateKeyError(AtlasError):
    """A table holds some upsert key more than once (written concurrently before keys were declared)."""
