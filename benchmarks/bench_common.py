"""What every benchmark script shares: the repo on sys.path, the machine label, one JSON line per figure."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # scripts run as `python benchmarks/NAME.py` import backend/ and embeddings/

MACHINE = f"{os.cpu_count()}-core CPU, shared ({platform.machine()})"


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    """Print one figure as a JSON line: benchmark, value, unit, machine, its 1-minute load average and any extras."""
    record = {"benchmark": name, "value": round(float(value), 4), "unit": unit, "machine": MACHINE,
              "load1": round(os.getloadavg()[0], 2), **extra}
    print(json.dumps(record), flush=True)


@contextlib.contextmanager
def scratch_folder(prefix: str, *, given: str | None = None, keep: bool = False, parent: str | None = None) -> Iterator[Path]:
    """The folder a benchmark works in: `given` as it is (kept), else a new temporary one removed at the end
    unless `keep`."""
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield folder
    finally:
        if not given and not keep:
            shutil.rmtree(folder, ignore_errors=True)
