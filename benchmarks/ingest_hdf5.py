"""HDF5 ingest rate: an AstroCLIP-layout file of N objects (152x152x3 g,r,z cutouts + 7781-pixel spectra,
redshifts, targetids) is generated in a temp dir and ingested into a fresh atlas with `run_ingest`.

Prints JSON lines: objects/s, MB/s of HDF5 read, and the ingest process's peak RSS (the file is generated
in a child process, so the peak belongs to the streaming ingest alone).

    python benchmarks/ingest_hdf5.py            # 5000 objects (~1.5 GB file)
    python benchmarks/ingest_hdf5.py --n 1000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

from bench_common import emit, scratch_folder

from embeddings.ingest import run_ingest
from embeddings.ingest.samples import write_astroclip_h5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="objects in the generated file")
    parser.add_argument("--batch-rows", type=int, default=256, help="rows per atlas write")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    with scratch_folder("arp-ingest-bench-", keep=args.keep) as tmp:
        path = tmp / "astroclip.h5"
        t0 = time.perf_counter()
        child = mp.get_context("spawn").Process(target=write_astroclip_h5, args=(path, args.n), kwargs={"groups": 10})
        child.start()
        child.join()
        gen_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 2**20
        t0 = time.perf_counter()
        report = run_ingest(path, str(tmp / "atlas"), progress=False, batch_rows=args.batch_rows)
        ingest_s = time.perf_counter() - t0
        assert report.added == args.n, report.summary()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        extra = {"n": args.n, "file_mb": round(size_mb), "generate_s": round(gen_s, 1), "ingest_s": round(ingest_s, 1)}
        emit("ingest_hdf5_astroclip_rate", args.n / ingest_s, "objects/s", **extra)
        emit("ingest_hdf5_astroclip_read", size_mb / ingest_s, "MB/s", **extra)
        emit("ingest_hdf5_peak_rss", peak_mb, "MiB", **extra)


if __name__ == "__main__":
    main()
