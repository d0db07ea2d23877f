"""What an embedding job takes and gives back, for both engines: options, the job's reporter, the summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from backend.jobs import JobStatus
from backend.spaces import SpaceInfo

DEFAULT_BATCH = 256
WRITE_ROWS = 2048  # vectors per upsert: fewer, larger commits; at most this many recomputed after a kill
PRECISIONS = ("bf16", "fp16", "fp32")
MAX_SKIP_EXAMPLES = 20


@dataclass(frozen=True)
class EmbedOptions:
    """How to embed: which model variant, where, in what batches, how much, and what to do after."""

    modality: str | None = None  # picks NAME-MODALITY when the name is a family
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    batch_size: int = DEFAULT_BATCH
    workers: int | None = None  # local: DataLoader workers (None: several on GPU, none on CPU); ray: encoder actors
    precision: str = "bf16"  # autocast on GPU only
    limit: int | None = None  # embed at most this many (not yet embedded) objects
    checkpoint: str | None = None  # a local weights file instead of the default source
    write_rows: int = WRITE_ROWS  # vectors per commit (smaller: less recomputed after a kill, more commits)
    index: bool = True  # build (or refresh) the space's ANN index when vectors were written or it is stale
    progress: bool = True  # a terminal progress bar

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")


@dataclass(frozen=True)
class RayOptions(EmbedOptions):
    """Options of the Ray Data engine: the cluster, GPU share per encoder actor, and encoder factory arguments."""

    address: str | None = None  # a Ray cluster to join; None starts a small local instance
    gpus_per_worker: float = 0.0  # 0: CPU actors
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the registry factory in each actor


class JobReporter(Protocol):
    """What a running job reports to (backend.jobs.JobContext is one): progress, and whether to stop."""

    def progress(self, fraction: float, message: str = "") -> None:
        """Record progress in [0, 1] with a short message."""

    def cancelled(self) -> bool:
        """Whether the user asked to stop."""


class SkipLog:
    """Rows left out of a job: a count per reason and the first few examples."""

    def __init__(self) -> None:
        self.reasons: Counter[str] = Counter()
        self.examples: list[dict[str, str]] = []

    def add(self, object_id: str, reason: str) -> None:
        """Record one skipped row."""
        self.reasons[reason] += 1
        if len(self.examples) < MAX_SKIP_EXAMPLES:
            self.examples.append({"object_id": str(object_id), "reason": reason})

    @property
    def count(self) -> int:
        """How many rows were skipped."""
        return int(sum(self.reasons.values()))


@dataclass
class EmbedSummary:
    """What an embedding run did to one space (both engines return it; `to_dict()` is the job's stored result)."""

    space: str
    encoder: str
    modality: str
    weights_revision: str
    preprocess_version: str
    device: str
    engine: str = "local"
    status: JobStatus = JobStatus.DONE  # DONE or CANCELLED
    already_embedded: int = 0
    embedded: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[dict[str, str]] = field(default_factory=list)
    vectors_in_space: int = 0
    seconds: float = 0.0
    objects_per_s: float | None = None
    forward_batch: int | None = None  # local engine: the forward batch after any out-of-memory halving
    oom_events: int | None = None
    duplicates_dropped: int = 0  # Ray engine: rows another writer had also appended for the same ids, deleted after
    index: dict[str, Any] | None = None  # the ANN index entry, when this run built one
    recall: dict[str, Any] | None = None  # its measured recall

    @classmethod
    def start(cls, info: SpaceInfo, device: str, engine: str, already_embedded: int) -> EmbedSummary:
        """A summary of a run about to start on a space."""
        return cls(info.name, info.encoder, info.modality, info.weights_revision, info.preprocess_version, device,
                   engine, already_embedded=already_embedded)

    def record_skips(self, skips: SkipLog) -> None:
        """Copy the skipped rows' counts and examples in."""
        self.skipped, self.skipped_reasons, self.skipped_examples = skips.count, dict(skips.reasons), skips.examples

    def record_time(self, seconds: float, processed: int) -> None:
        """Wall time and throughput of the run."""
        self.seconds = round(seconds, 3)
        self.objects_per_s = round(processed / seconds, 2) if seconds > 0 and processed else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the status as its string)."""
        return {**asdict(self), "status": str(self.status)}
