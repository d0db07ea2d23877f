"""The ingest report: what was added, updated and skipped (with reasons), stored in the `ingest_reports` table."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field

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


class SourceError(ValueError):
    """The whole source is unusable (missing, unreadable, unknown format): one clear line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


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
    elapsed_s: float = 0.0
    cancelled: bool = False
    report_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def skip(self, where: str, reason: str, detail: str = "") -> None:
        """Record one skipped row or file."""
        self.skipped += 1
        self.skip_counts[reason] = self.skip_counts.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append([str(where), detail or reason])

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
        return "\n".join(lines)

    def save(self, atlas: Atlas) -> None:
        """Store this report as one row of the `ingest_reports` table."""
        body = {k: v for k, v in self.to_dict().items() if k not in ("report_id", "source", "kind", "added", "skipped")}
        atlas.append(
            schema.INGEST_REPORTS,
            [
                {
                    "report_id": self.report_id,
                    "source": self.source,
                    "kind": self.kind,
                    "created_at": utcnow(),
                    "added": self.added,
                    "skipped": self.skipped,
                    "report": json.dumps(body),
                }
            ],
            create_schema=schema.INGEST_REPORTS_SCHEMA,
        )
