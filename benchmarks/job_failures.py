"""How fast an embedding job fails on missing weights: the CLI and the job runner, offline and with no route to the hub.

    python benchmarks/job_failures.py [--repeats 5] [--encoders zoobot,astroclip-image,astropt]

Each figure is the median seconds from launch to the error (CLI: process start to exit; job runner: `jobs.submit`
to the failed job row), with weights folders that hold nothing. Goal (issue 10): <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from bench_common import REPO, emit, scratch_folder

from backend import jobs
from backend.store import open_atlas

MODES = {"offline": {"HF_HUB_OFFLINE": "1"}, "no-network": {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}}


def cli_seconds(atlas: str, encoder: str) -> float:
    """Seconds for `python -m embeddings embed` to exit with the missing-weights error."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "embeddings", "embed", "--atlas", atlas, "--encoder", encoder],
                          capture_output=True, text=True, cwd=REPO, env=os.environ.copy(), timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != 2 or "huggingface-cli download" not in done.stderr:
        raise SystemExit(f"unexpected CLI result for {encoder} (exit {done.returncode}): {done.stderr[-500:]}")
    return seconds


def runner_seconds(atlas_uri: str, encoder: str) -> float:
    """Seconds from `jobs.submit` of an embed job to its failed row, as the Jobs page sees it."""
    atlas = open_atlas(atlas_uri)
    start = time.perf_counter()
    job = jobs.wait(atlas, jobs.submit(atlas, "embed", {"encoder": encoder}), timeout_s=600, poll_s=0.05)
    seconds = time.perf_counter() - start
    if job["status"] != "failed" or "huggingface-cli download" not in job["message"]:
        raise SystemExit(f"unexpected job result for {encoder}: {job['status']} {job['message'][:300]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--encoders", default="zoobot,astroclip-image,astropt")
    args = parser.parse_args()
    with scratch_folder("arp-jobfail-") as folder:
        atlas = str(folder / "atlas")
        open_atlas(atlas, create=True)
        os.environ.update(ARP_WEIGHTS_DIR=str(folder / "weights"), HF_HUB_CACHE=str(folder / "hub"))
        for mode, env in MODES.items():
            os.environ.update(env)
            for encoder in args.encoders.split(","):
                for path, measure in (("cli", cli_seconds), ("job-runner", runner_seconds)):
                    runs = [measure(atlas, encoder) for _ in range(args.repeats)]
                    emit(f"missing weights -> error, {path}, {mode}", statistics.median(runs), "s", encoder=encoder,
                         p90=round(sorted(runs)[int(0.9 * (len(runs) - 1))], 3), runs=len(runs))


if __name__ == "__main__":
    main()
