"""The app at scale: what the pages ask of a large atlas, timed against a small one in the same run.

Backend figures per atlas (the calls the pages make): catalogue read (projected columns), map frame + full
datashader render, neighbours() of a galaxy (plain and redshift-filtered), top anomalies, cluster list, and this
process's peak RSS. `--browser` also runs the live app (streamlit + headless Chromium) on each atlas: first paint
of every page after warm-up, click a neighbour -> next galaxy with its grid, and the server's RSS. `--compute`
times maps + anomaly scores + clusters of one space of the large atlas (fit on a sample, transform the rest).

    python benchmarks/app_scale.py --atlas data/atlases/scale1m --small data/atlases/demo3k [--browser] [--compute]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_common import emit  # noqa: E402

from backend import anomaly, maps, rare, render  # noqa: E402
from backend.discovery import discover_space, score_parameters  # noqa: E402
from backend.features import PARAMETER_SETS, parameter_features, ranking_set_names, space_features  # noqa: E402
from backend.neighbours import neighbours  # noqa: E402
from backend.spaces import list_spaces  # noqa: E402
from backend.store import open_atlas  # noqa: E402

PAGES = ("home", "map", "galaxy", "rare", "probes", "jobs", "data")


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    """Median seconds of `repeats` calls after one warm-up call, and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def backend_figures(uri: str, label: str) -> None:
    atlas = open_atlas(uri)
    n = atlas.count("objects")
    space = next(s for s, info in list_spaces(atlas).items() if info.modality == "image")
    cols = ["object_id", "survey", "ra", "dec", "redshift", *atlas.label_columns()]
    t, cat = timed(lambda: atlas.objects(list(dict.fromkeys(cols))), 1)
    emit("app.catalogue_read", t, "s", atlas=label, objects=n, columns=len(set(cols)))
    if maps.load_map(atlas, space) is None:
        frame = cat.iloc[:0]
        emit("app.map_frame", float("nan"), "s", atlas=label, objects=n, note="no map stored: run with --compute")
    else:
        t, frame = timed(lambda: maps.with_objects(atlas, maps.load_map(atlas, space), ["redshift"]), 1)
        emit("app.map_frame", t, "s", atlas=label, objects=n)
        t, _ = timed(lambda: render.render(frame, "redshift", width=900, height=650))
        emit("app.map_render_all_points", t, "s", atlas=label, objects=n, goal_s=2.0)
    ids = list(cat["object_id"].sample(12, random_state=0))
    plain, filtered = [], []
    neighbours(atlas, ids[0], space, k=12)
    for oid in ids[1:]:
        t0 = time.perf_counter()
        neighbours(atlas, oid, space, k=12)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        neighbours(atlas, oid, space, k=12, z_range=(0.05, 0.15))
        filtered.append(time.perf_counter() - t0)
    emit("app.neighbours_p50", np.median(plain) * 1000, "ms", atlas=label, objects=n, space=space)
    emit("app.neighbours_filtered_p50", np.median(filtered) * 1000, "ms", atlas=label, objects=n, filter="z 0.05-0.15")
    if "anomaly" in frame.columns:
        t, _ = timed(lambda: anomaly.top_anomalies(atlas, space, n=100), 1)
        emit("app.top_anomalies", t, "s", atlas=label, objects=n)
    t, _ = timed(lambda: rare.clusters(atlas, space), 1)
    emit("app.cluster_list", t, "s", atlas=label, objects=n)
    emit("app.backend_peak_rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MiB", atlas=label,
         note="this process after all calls above (cumulative)")


def server_rss_mib(port: int) -> float:
    """Resident memory of the streamlit process serving `port` (with its children)."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "streamlit" in cmd and f"--server.port {port}" in cmd:
            return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
    return float("nan")


def browser_figures(uri: str, label: str, repeats: int) -> None:
    from browser_latency import click_to_neighbours, load_map

    from tests.browser import chromium_context, streamlit_server, wait_app_idle

    atlas = open_atlas(uri)
    n = atlas.count("objects")
    first_id = str(atlas.objects(["object_id"], limit=1)["object_id"].iloc[0])
    log = Path(tempfile.mkdtemp(prefix="arp-bench-")) / "streamlit.log"
    space = next(s for s, info in list_spaces(atlas).items() if info.modality == "image")
    has_map = maps.load_map(atlas, space) is not None
    with streamlit_server(uri, log) as url, chromium_context(1400, 1000) as ctx:
        port = int(url.rsplit(":", 1)[1])
        if has_map:
            load_map(ctx, url)  # warm-up: imports, numba, caches
        else:
            click_to_neighbours(ctx, url, first_id, 1)
        for name in PAGES:
            times = []
            for _ in range(repeats):
                page = ctx.new_page()
                t0 = time.perf_counter()
                page.goto(f"{url}/{name}" + (f"?object={first_id}" if name == "galaxy" else ""))
                wait_app_idle(page, 300_000)
                times.append(time.perf_counter() - t0)
                page.close()
            emit(f"app.first_paint.{name}", statistics.median(times), "s", atlas=label, objects=n, goal_s=3.0,
                 runs=repeats)
        if has_map:
            emit("app.map_page_drawn", statistics.median([load_map(ctx, url) for _ in range(repeats)]), "s",
                 atlas=label, objects=n, goal_s=3.0)
        clicks = click_to_neighbours(ctx, url, first_id, repeats + 1)[1:]
        emit("app.click_to_next_galaxy", statistics.median(clicks), "s", atlas=label, objects=n, goal_s=1.0,
             max_s=round(max(clicks), 3))
        emit("app.server_rss", server_rss_mib(port), "MiB", atlas=label, objects=n, goal_mib=4096)


def compute_figures(uri: str, label: str) -> None:
    """Map + anomaly scores + clusters of the image space, as `discover` computes them (fit on samples)."""
    atlas = open_atlas(uri)
    space = next(s for s, info in list_spaces(atlas).items() if info.modality == "image")
    n = atlas.count("objects")
    started = time.perf_counter()
    fs = space_features(atlas, space)
    emit("app.compute_features", time.perf_counter() - started, "s", atlas=label, objects=n, note="read + PCA")
    t0 = time.perf_counter()
    discover_space(atlas, fs, say=lambda m: print(f"{time.perf_counter() - t0:7.1f} s  {m}", flush=True))
    emit("app.compute_map_anomaly_clusters", time.perf_counter() - started, "s", atlas=label, objects=n, goal_s=900,
         anomaly_fit_size=anomaly.FIT_SIZE, map_fit_size=maps.MapParams().fit_size,
         peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    t0 = time.perf_counter()
    sets = {name: fs if name == space else feature_sets_one(atlas, name)
            for name in ranking_set_names(atlas, [*list_spaces(atlas), *PARAMETER_SETS])}
    sets = {name: value for name, value in sets.items() if value is not None}
    for measured in sets.values():
        if measured.parameters:  # a parameter set's own scores and the clusters of its tail, as discovery makes them
            score_parameters(measured)
    joint_fs, joint_scores = anomaly.score_joint(sets)
    rare.anomaly_clusters(joint_fs.X, joint_scores["anomaly"].to_numpy(), joint_fs.ids)
    emit("app.compute_combined_ranking", time.perf_counter() - t0, "s", atlas=label, objects=n, sets=list(sets),
         note="each parameter set's own scores and tail clusters, then the joint features of the ranking sets, kNN "
              "(sampled past 20k rows) and the clusters of its tail; add to the line above",
         peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def feature_sets_one(atlas: object, name: str) -> object:
    """One ranking set's features by name (a space, or a measured parameter set; None when not measured)."""
    return parameter_features(atlas, name) if name in PARAMETER_SETS else space_features(atlas, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", required=True, help="the large atlas (python -m embeddings scale)")
    parser.add_argument("--small", default=None, help="a small atlas measured in the same run, for ratios")
    parser.add_argument("--browser", action="store_true")
    parser.add_argument("--compute", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser-only", action="store_true", help="skip the backend figures")
    args = parser.parse_args()
    runs = [(args.small, "small"), (args.atlas, "large")] if args.small else [(args.atlas, "large")]
    if args.compute:
        compute_figures(args.atlas, "large")
    for uri, label in runs if not args.browser_only else []:
        backend_figures(uri, label)
    if args.browser:
        for uri, label in runs:
            browser_figures(uri, label, args.repeats)


if __name__ == "__main__":
    main()
