"""What every benchmark script shares: the repo on sys.path, the machine label, one JSON line per figure."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # scripts run as `python benchmarks/NAME.py` import backend/ and embeddings/

MACHINE = f"{os.cpu_count()}-core CPU, shared ({platform.machine()})"


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    """Print one figure as a JSON line: benchmark, value, unit, machine and any extra fields."""
    record = {"benchmark": name, "value": round(float(value), 4), "unit": unit, "machine": MACHINE, **extra}
    print(json.dumps(record), flush=True)
