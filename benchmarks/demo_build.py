"""Build time of the SDSS-10k demo survey (objects only: catalogue fit, GalSim cutouts, spectra, LanceDB writes).

Prints JSON lines: total seconds, objects/s, and the full-10k time extrapolated from this run's rate
(the budget is 5 minutes for 10,000 objects on a 2-core machine).

    python benchmarks/demo_build.py                 # the full 10,000
    python benchmarks/demo_build.py --n 2000        # a quicker run, extrapolated
"""

from __future__ import annotations

import argparse
import os
import time

from bench_common import emit, scratch_folder

from backend.store import where_eq
from embeddings.demo.build import build_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--atlas", default=None, help="Where to build (default: a temporary folder, removed after).")
    args = parser.parse_args()
    with scratch_folder("arp-demo-bench-", given=args.atlas) as folder:
        load = os.getloadavg()[0]
        started = time.perf_counter()
        atlas = build_demo(str(folder), n=args.n, seed=args.seed, workers=args.workers, progress=False)
        seconds = time.perf_counter() - started
        count = atlas.count("objects", where_eq("survey", "sdss-demo"))
        size_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
        extra = {"n": count, "workers": args.workers, "load_avg_1min_before": round(load, 2)}
        emit("demo_build_total", seconds, "s", **extra)
        emit("demo_build_rate", count / seconds, "objects/s", **extra)
        emit("demo_build_10k_extrapolated", seconds * 10_000 / count, "s", **extra)
        emit("demo_atlas_size", size_mb, "MiB", **extra)


if __name__ == "__main__":
    main()
