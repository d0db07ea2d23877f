"""The public, versioned atlas schema (documented in docs/atlas-format.md)."""

from __future__ import annotations

import re

import pyarrow as pa

SCHEMA_VERSION = 1

OBJECTS = "objects"
TAGS = "tags"
JOBS = "jobs"
PROBES = "probes"
META = "atlas_meta"
INGEST_REPORTS = "ingest_reports"
ANOMALIES = "anomalies"  # combined anomaly ranking across feature sets (backend.anomaly)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

# Lance's marker for an (unenforced) primary key. merge_insert only detects that two concurrent writers
# inserted the same new key (and retries one of them) when the table declares its key this way (Lance
# issues #4585, #8949); without it both commits land and the key is stored twice.
PRIMARY_KEY_METADATA = {b"lance-schema:unenforced-primary-key:position": b"1"}
_PRIMARY_KEY_PREFIX = b"lance-schema:unenforced-primary-key"


def key_field(name: str) -> pa.Field:
    """A table's upsert key: a non-nullable string declared as Lance's primary key."""
    return pa.field(name, pa.string(), nullable=False, metadata=PRIMARY_KEY_METADATA)


def is_primary_key(field: pa.Field) -> bool:
    """Whether a field carries Lance's primary-key marker (either its position or its older boolean form)."""
    return any(k.startswith(_PRIMARY_KEY_PREFIX) for k in (field.metadata or {}))

# Core columns every objects table has; surveys may add free label columns
# (strings, floats, ints, bools) beside them.
OBJECT_CORE = pa.schema(
    [
        key_field("object_id"),
        pa.field("survey", pa.string()),
        pa.field("ra", pa.float64()),
        pa.field("dec", pa.float64()),
        pa.field("redshift", pa.float32()),
        pa.field("split", pa.string()),
        pa.field("image", pa.list_(pa.float32())),
        pa.field("image_shape", pa.list_(pa.int32())),
        pa.field("spectrum_flux", pa.list_(pa.float32())),
        pa.field("spectrum_ivar", pa.list_(pa.float32())),
        pa.field("thumbnail", pa.binary()),
        pa.field("source", pa.string()),
    ]
)

TAGS_SCHEMA = pa.schema(
    [
        pa.field("object_id", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),  # "add" | "remove"
        pa.field("note", pa.string()),
        pa.field("author", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

JOBS_SCHEMA = pa.schema(
    [
        key_field("job_id"),
        pa.field("kind", pa.string()),
        pa.field("params", pa.string()),  # JSON
        pa.field("status", pa.string()),  # queued|running|done|failed|cancelled
        pa.field("progress", pa.float32()),
        pa.field("message", pa.string()),
        pa.field("pid", pa.int64()),
        pa.field("log_path", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        pa.field("result", pa.string()),  # JSON
        pa.field("host", pa.string()),  # machine the job process runs on
        pa.field("pid_start", pa.int64()),  # the process's start time (clock ticks since boot): pid reuse is noticed
        pa.field("heartbeat_at", pa.timestamp("us", tz="UTC")),  # written every few seconds while running
        pa.field("cancel_requested", pa.bool_()),
    ]
)

PROBES_SCHEMA = pa.schema(
    [
        key_field("probe_id"),
        pa.field("space", pa.string()),
        pa.field("target", pa.string()),
        pa.field("method", pa.string()),
        pa.field("task", pa.string()),  # regression | classification
        pa.field("metrics", pa.string()),  # JSON
        pa.field("model", pa.binary()),  # safetensors bytes of the fitted probe
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

META_SCHEMA = pa.schema(
    [
        key_field("key"),
        pa.field("value", pa.string()),  # JSON
    ]
)

INGEST_REPORTS_SCHEMA = pa.schema(
    [
        key_field("report_id"),
        pa.field("source", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("added", pa.int64()),
        pa.field("skipped", pa.int64()),
        pa.field("report", pa.string()),  # JSON: counts per reason + first rows per reason
    ]
)

FIXED_TABLES = {
    TAGS: TAGS_SCHEMA,
    JOBS: JOBS_SCHEMA,
    PROBES: PROBES_SCHEMA,
    META: META_SCHEMA,
    INGEST_REPORTS: INGEST_REPORTS_SCHEMA,
}


TABLE_KEYS = {OBJECTS: "object_id", JOBS: "job_id", PROBES: "probe_id", META: "key", INGEST_REPORTS: "report_id"}


def table_key(name: str) -> str | None:
    """The upsert key of a table Arp writes with merge_insert (None for appended or replaced tables)."""
    return "object_id" if name.startswith("vectors__") else TABLE_KEYS.get(name)


def check_name(name: str, what: str = "name") -> str:
    """Validate a name used inside a table name (encoder, modality, space, probe)."""
    if not _NAME_RE.match(name or ""):
        raise ValueError(
            f"invalid {what} {name!r}: use lowercase letters, digits, '_' or '-', starting with a letter or digit"
        )
    return name


def vectors_table(encoder: str, modality: str) -> str:
    """Table name of one embedding space: `vectors__<encoder>__<modality>`."""
    return f"vectors__{check_name(encoder, 'encoder')}__{check_name(modality, 'modality')}"


def space_name(encoder: str, modality: str) -> str:
    """The short name of a space (`<encoder>__<modality>`), used by maps and probes."""
    return f"{check_name(encoder, 'encoder')}__{check_name(modality, 'modality')}"


def parse_space(space: str) -> tuple[str, str]:
    """Split `<encoder>__<modality>` (or a full vectors table name) into its parts."""
    name = space.removeprefix("vectors__")
    encoder, sep, modality = name.rpartition("__")
    if not sep:
        raise ValueError(f"not a space name: {space!r} (expected '<encoder>__<modality>')")
    return check_name(encoder, "encoder"), check_name(modality, "modality")


def maps_table(space: str) -> str:
    """Table name of the 2-D maps of one space."""
    return f"maps__{space}"


def predictions_table(probe_id: str) -> str:
    """Table name of one probe's predictions."""
    return f"predictions__{check_name(probe_id, 'probe id')}"


def vectors_schema(dim: int) -> pa.Schema:
    """Schema of a vectors table: one row per object, with full provenance."""
    return pa.schema(
        [
            key_field("object_id"),
            pa.field("vector", pa.list_(pa.float32(), dim)),
            pa.field("encoder", pa.string()),
            pa.field("weights_revision", pa.string()),
            pa.field("preprocess_version", pa.string()),
            pa.field("created_at", pa.timestamp("us", tz="UTC")),
        ]
    )
