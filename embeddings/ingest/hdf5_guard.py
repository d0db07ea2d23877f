"""HDF5 refusals made before any data is read: storage outside the file, and rows too big to hold in memory.

An HDF5 dataset can keep its bytes in another file (external raw storage), map other files (a virtual
dataset) or be an external link; reading it would copy that file into the atlas. A few bytes can also declare
a 30000 x 30000 x 3 row. Both are decided from the file's structure alone.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import h5py
import numpy as np

from . import report as R

MAX_ROW_BYTES = 64 * 2**20  # one object's pixels + spectrum + labels; real layouts need well under 2 MB
MAX_LINKS = 100_000


def _refuse(name: str, reason: str, detail: str) -> R.SourceError:
    return R.SourceError(f"{name}: refused ({reason}): {detail}", reason=reason)


def check_storage(f: h5py.File, name: str) -> None:
    """Raise SourceError(reason unsafe_dataset) if any link or dataset reaches outside the file."""
    problems: list[str] = []
    count = 0

    def visit(path: str, link: h5py.HardLink | h5py.SoftLink | h5py.ExternalLink) -> None:
        nonlocal count
        count += 1
        if count > MAX_LINKS:
            raise _refuse(name, R.TOO_LARGE, f"more than {MAX_LINKS} objects in the file")
        if isinstance(link, h5py.ExternalLink):
            problems.append(f"/{path} is an external link to another file")
        elif isinstance(link, h5py.HardLink):
            obj = f.get(path)
            if isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    problems.append(f"/{path} is a virtual dataset mapping other files")
                elif obj.external:
                    problems.append(f"/{path} keeps its data in external raw storage")

    f.visititems_links(visit)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise _refuse(name, R.UNSAFE_DATASET, f"{problems[0]}{more}; only self-contained HDF5 files are read")


def row_bytes(ds: h5py.Dataset) -> int:
    """Bytes one row (index along the first axis) of a dataset occupies in memory, from its declared shape."""
    shape = ds.shape or ()
    return int(np.prod([int(s) for s in shape[1:]], dtype=object) or 1) * ds.dtype.itemsize


def check_rows(datasets: Iterable[h5py.Dataset | None], name: str, limit: int = MAX_ROW_BYTES) -> None:
    """Raise SourceError(reason too_large) if the rows of these datasets together exceed `limit` bytes."""
    present = [d for d in datasets if isinstance(d, h5py.Dataset)]
    for ds in present:
        if ds.ndim == 0:
            raise _refuse(name, R.WRONG_SHAPE, f"{ds.name} is a scalar, expected one value or array per row")
    total = sum(row_bytes(ds) for ds in present)
    if total > limit:
        worst = max(present, key=row_bytes)
        shape = "x".join(str(s) for s in worst.shape[1:])
        raise _refuse(name, R.TOO_LARGE, f"one row needs {total / 2**20:.0f} MiB ({worst.name} declares rows of shape "
                                         f"{shape}); the limit is {limit / 2**20:.0f} MiB per row")


def check_upload(data: bytes, name: str) -> None:
    """Open uploaded HDF5 bytes in memory and refuse external storage, virtual datasets and huge rows."""
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            check_storage(f, name)
            datasets: list[h5py.Dataset] = []
            f.visititems(lambda _p, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
            for ds in datasets:
                if ds.ndim:
                    check_rows([ds], name)
    except OSError as exc:
        raise R.SourceError(f"{name}: not a readable HDF5 file ({exc})", reason=R.CORRUPT_FILE) from None
