"""The ingest report: what was added, updated and skipped (with reasons), stored in the `ingest_reports` table."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime

from backend import schema
from backend.store import Atlas, utcnow

EXAMPLES_PER_REASON = 5

# Skip reasons (stable strings; the app and docs/ingest.md list them).
CORRUPT_FILE = "corrupt_file"
NON_FINITE = "non_finite_pixels"
ALL_ZERO = "all_zero_spectrum"
WRONG_SHAPE = "wrong_shape"
MISSING_BANDS = "missing_bands"
MISMATCHED_GRID = "mismatched_grid"
DUPLICATE_ID = "duplicate_id"
NO_POSITION = "no_position"
UNMATCHED = "unmatched"
UNSAFE_PATH = "unsafe_path"
UNSUPPORTED = "unsupported_file"
UNSAFE_DATASET = "unsafe_dataset"
TOO_LARGE = "too_large"
BAD_POSITION = "bad_position"
TYPE_MISMATCH = "type_mismatch"
MISSING_ID = "missing_id"
MISSING_VALUE = "missing_value"


class SourceError(ValueError):
    """The whole source is unusable (missing, unreadable, unknown format): one clear line for the user."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(" ".join(str(message).split()))
        self.reason = reason


@dataclass
class IngestReport:
    """Outcome of one ingest: counts and the first few (row/file, reason) examples per skip reason."""

    source: str
    kind: str
    survey: str = ""
    added: int = 0
    updated: int = 0
    skipped: int = 0
    skip_counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[list[str]]] = field(default_factory=dict)
    dropped_columns: dict[str, dict] = field(default_factory=dict)
    elapsed_s: float = 0.0
    cancelled: bool = False
    status: str = "running"  # running | done | cancelled | failed; a killed ingest leaves "running"
    error: str = ""
    report_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: str = field(default_factory=lambda: utcnow().isoformat())

    def skip(self, where: str, reason: str, detail: str = "") -> None:
        """Record one skipped row or file."""
        self.skipped += 1
        self.skip_counts[reason] = self.skip_counts.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append([str(where), detail or reason])

    def drop_column(self, column: str, reason: str, detail: str, rows: int) -> None:
        """Record that a column's values were not written for `rows` rows (the rows themselves were)."""
        entry = self.dropped_columns.setdefault(column, {"reason": reason, "detail": detail, "rows": 0})
        entry["rows"] += rows

    def to_dict(self) -> dict:
        """Plain JSON-able dict (the job result)."""
        return asdict(self)

    def summary(self) -> str:
        """Human-readable multi-line summary for the CLI."""
        lines = [
            f"ingest {self.kind} {self.source} -> survey {self.survey!r}: "
            f"{self.added} added, {self.updated} updated, {self.skipped} skipped in {self.elapsed_s:.1f} s"
        ]
        for reason, n in sorted(self.skip_counts.items(), key=lambda kv: -kv[1]):
            lines.append(f"  skipped {n:>6} x {reason}")
            for where, detail in self.examples.get(reason, []):
                lines.append(f"      {where}: {detail}")
        for column, entry in self.dropped_columns.items():
            lines.append(f"  column {column!r} not written for {entry['rows']} row(s) ({entry['reason']}): {entry['detail']}")
        if self.error:
            lines.append(f"  stopped: {self.error}")
        return "\n".join(lines)

    def save(self, atlas: Atlas) -> None:
        """Store this report as one row of the `ingest_reports` table (saving again updates the same row)."""
        body = {k: v for k, v in self.to_dict().items()
                if k not in ("report_id", "source", "kind", "added", "skipped", "created_at")}
        atlas.upsert(
            schema.INGEST_REPORTS,
            [
                {
                    "report_id": self.report_id,
                    "source": self.source,
                    "kind": self.kind,
                    "created_at": datetime.fromisoformat(self.created_at),
                    "added": self.added,
                    "skipped": self.skipped,
                    "report": json.dumps(body),
                }
            ],
            key="report_id",
            create_schema=schema.INGEST_REPORTS_SCHEMA,
        )
