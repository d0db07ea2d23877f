"""Command line: `python -m embeddings demo|ingest|fetch|embed|train-builtin|measure|export|scale|dedupe`.

Each command is a thin wrapper: parse options, call the module that does the work, print a
summary. User errors (bad paths, missing weights, no network) print one clear line and exit 2.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import typer

from backend.config import default_atlas_uri

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Arp embedding-side commands.")

AtlasOpt = typer.Option(None, "--atlas", help="Atlas folder or URI (default: $ARP_ATLAS or data/atlases/sdss10k).")


def _atlas(uri: str | None) -> str:
    return uri or default_atlas_uri()


class UserError(Exception):
    """An error caused by input or environment; printed without a traceback."""


def _store_errors() -> tuple[type[Exception], ...]:
    """AtlasError once the store is imported (imported lazily: lancedb costs seconds a failing command never needs)."""
    store = sys.modules.get("backend.store")
    return (store.AtlasError,) if store is not None else ()


def main() -> None:
    """Run the CLI, turning user errors into one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    user_errors: tuple[type[Exception], ...] = (UserError, FileNotFoundError, KeyError)
    try:
        app()
    except Exception as exc:
        if not isinstance(exc, user_errors + _store_errors()):
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


# Commands are added below by the modules that own them (demo, ingest, fetch, embed, train-builtin).


@app.command("embed")
def embed_cmd(
    atlas: str = AtlasOpt,
    encoder: str = typer.Option(..., "--encoder", help="Registered encoder name (see available encoders), e.g. arp-pair-image."),
    modality: str = typer.Option(None, "--modality", help="image | spectrum (selects NAME-MODALITY for a family)."),
    device: str = typer.Option("auto", "--device", help="auto | cuda | cuda:N | cpu"),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    workers: int = typer.Option(None, "--workers", min=0, help="local: DataLoader workers (default 0 on CPU, up to 8 on GPU); ray: encoder actors."),
    precision: str = typer.Option("bf16", "--precision", help="bf16 | fp16 | fp32 (autocast on GPU only)"),
    limit: int = typer.Option(None, "--limit", min=0, help="Embed at most N (not yet embedded) objects."),
    checkpoint: str = typer.Option(None, "--checkpoint", help="Local weights file instead of the default source."),
    write_rows: int = typer.Option(2048, "--write-rows", min=1, help="Vectors per commit (smaller: less redone after a kill)."),
    engine: str = typer.Option("local", "--engine", help="local (one process) | ray (Ray Data: a local instance or --ray-address)."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster to join (e.g. auto, ray://head:10001); default: a local instance."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", min=0.0, help="ray: GPUs per encoder actor (0: CPU actors)."),
) -> None:
    """Embed atlas objects with one encoder (resumable: rerun to finish after an interruption)."""
    import json

    from embeddings.encoders.hub_weights import check_default_weights

    check_default_weights(encoder, modality, checkpoint)  # before torch and lancedb: missing weights fail in a second
    try:
        common: dict[str, Any] = {"modality": modality, "device": device, "batch_size": batch_size, "workers": workers,
                  "precision": precision, "limit": limit, "checkpoint": checkpoint, "write_rows": write_rows}
        if engine == "ray":
            from embeddings.embed_types import RayOptions
            from embeddings.ray_engine import run_embedding_ray

            result = run_embedding_ray(_atlas(atlas), encoder, RayOptions(**common, address=ray_address,
                                                                           gpus_per_worker=gpus_per_worker))
        elif engine == "local":
            from embeddings.embed_types import EmbedOptions
            from embeddings.job import run_embedding

            result = run_embedding(_atlas(atlas), encoder, EmbedOptions(**common))
        else:
            raise UserError(f"--engine must be local or ray, not {engine!r}")
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(json.dumps(result.to_dict(), indent=1, default=str))


@app.command("train-builtin")
def train_builtin_cmd(
    atlas: str = AtlasOpt,
    out: str = typer.Option(None, "--out", help="Weights file (default: embeddings/weights/arp_pair.safetensors)."),
    budget_scale: float = typer.Option(1.0, "--budget-scale", min=0.01,
                                       help="Multiply every stage's epoch cap and time budget (default 1: about 25 min on 2 cores)."),
    seed: int = typer.Option(0, "--seed"),
    pretrained: str = typer.Option(None, "--pretrained",
                                   help="Keep the towers of this weights file; redo only standardisation and alignment."),
) -> None:
    """Train Arp's builtin family (image SSL, masked spectra, alignment) on the train split (val for early stopping)."""
    import json

    from embeddings.builtin.train import train

    summary = train(_atlas(atlas), out=out, budget_scale=budget_scale, seed=seed, pretrained=pretrained)
    print(json.dumps(summary, indent=1, default=str))


@app.command("ingest")
def ingest_cmd(
    source: str = typer.Argument(..., help="HDF5 file, FITS/PNG/JPEG file or folder, SDSS/DESI spectrum FITS, CSV/Parquet."),
    atlas: str = AtlasOpt,
    kind: str = typer.Option(None, "--kind", help="hdf5 | folder | fits | images | catalog (default: detected)."),
    survey: str = typer.Option(None, "--survey", help="Survey name for new objects (default from the format)."),
    match_radius: float = typer.Option(None, "--match-radius", help="Cross-match onto existing objects within this many arcsec."),
    unmatched: str = typer.Option("add", "--unmatched", help="Rows matching no atlas object: add | skip (reported)."),
    bands: str = typer.Option(None, "--bands", help="Bands to keep, comma-separated (e.g. g,r,z)."),
    pixel_scale: float = typer.Option(None, "--pixel-scale", help="Arcsec per pixel when the files do not say."),
    id_column: str = typer.Option(None, "--id-column", help="Catalogue column joined to object_id."),
    update_positions: bool = typer.Option(False, "--update-positions",
                                          help="Overwrite ra/dec of objects already in the atlas (default: keep them)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Ingest a file or folder into the atlas (streaming; bad rows are skipped and reported)."""
    from embeddings.ingest import SourceError, run_ingest

    try:
        report = run_ingest(source, _atlas(atlas), kind=kind, survey=survey, progress=not no_progress,
                            match_radius=match_radius, unmatched=unmatched, bands=bands, pixel_scale=pixel_scale,
                            id_column=id_column, update_positions=update_positions)
    except SourceError as exc:
        raise UserError(str(exc)) from None
    print(report.summary())


@app.command("fetch")
def fetch_cmd(
    targets: str = typer.Option(..., "--targets", help="CSV with ra, dec (and optionally object_id) columns."),
    atlas: str = AtlasOpt,
    cache: str = typer.Option(None, "--cache", help="Download cache folder (default: data/fetch_cache)."),
    no_spectra: bool = typer.Option(False, "--no-spectra", help="Only fetch image cutouts."),
    rate: float = typer.Option(2.0, "--rate", help="Maximum requests per second."),
    retries: int = typer.Option(4, "--retries", min=1, help="Attempts per request (exponential backoff between)."),
    match_radius: float = typer.Option(1.0, "--match-radius", help="Arcsec for merging spectra onto cutouts."),
) -> None:
    """Download Legacy Survey g,r,z cutouts and SDSS spectra for targets into a cache, then ingest them."""
    from backend.config import DATA_DIR
    from embeddings.ingest import SourceError
    from embeddings.ingest.fetch import NetworkError, run_fetch

    try:
        report = run_fetch(_atlas(atlas), targets, cache or DATA_DIR / "fetch_cache", spectra=not no_spectra,
                           match_radius=match_radius, rate=rate, retries=retries)
    except (SourceError, NetworkError) as exc:
        raise UserError(str(exc)) from None
    print(report.summary())
    for ing in report.ingests:
        print(f"  ingest {ing['kind']}: {ing['added']} added, {ing['updated']} updated, {ing['skipped']} skipped")


@app.command("demo")
def demo_cmd(
    atlas: str = AtlasOpt,
    n: int = typer.Option(10000, "--n", min=1, max=10000, help="Number of catalogue galaxies (subsets keep every rare class)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, identical objects."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes rendering cutouts and spectra."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    objects_only: bool = typer.Option(False, "--objects-only", help="Stop after the objects (no vectors, index, maps)."),
) -> None:
    """Build the SDSS-10k demo survey, then embed it with the builtin pair, index it and map it."""
    import time

    from backend.store import where_eq
    from embeddings.demo.build import build_demo

    started = time.perf_counter()
    built = build_demo(_atlas(atlas), n=n, seed=seed, workers=workers, progress=not no_progress)
    seconds = time.perf_counter() - started
    count = built.count("objects", where_eq("survey", "sdss-demo"))
    print(f"demo: {count} objects in {built.uri} (seed {seed}) in {seconds:.1f} s ({count / max(seconds, 1e-9):.1f} objects/s)")
    if objects_only:
        return
    from embeddings.pipeline import prepare_atlas

    started = time.perf_counter()
    prepare_atlas(built, progress=not no_progress)  # DataLoader workers only pay off on GPU
    print(f"demo: builtin vectors, index, maps, anomalies and clusters ready in {time.perf_counter() - started:.1f} s")


@app.command("hdf")
def hdf_cmd(
    atlas: str = typer.Option(..., "--atlas", help="Atlas folder or URI for the Hubble Deep Field atlas."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    objects_only: bool = typer.Option(False, "--objects-only", help="Stop after the objects (no vectors, maps)."),
) -> None:
    """Build the Hubble Deep Field atlas (sep sources, one cutout each), then embed, measure and map it."""
    import time

    from backend.store import where_eq
    from embeddings.demo.hdf import build_hdf_atlas
    from embeddings.pipeline import IMAGE_ENCODERS, prepare_atlas

    started = time.perf_counter()
    built = build_hdf_atlas(atlas, progress=not no_progress)
    count = built.count("objects", where_eq("survey", "hubble-deep-field"))
    print(f"hdf: {count} sources in {built.uri} in {time.perf_counter() - started:.1f} s")
    if objects_only:
        return
    started = time.perf_counter()
    prepare_atlas(built, encoders=IMAGE_ENCODERS, progress=not no_progress)  # no spectra in the HDF
    print(f"hdf: builtin image vectors, morphology, map, anomalies and clusters ready in {time.perf_counter() - started:.1f} s")


@app.command("measure")
def measure_cmd(
    atlas: str = AtlasOpt,
    rediscover: bool = typer.Option(True, "--discover/--no-discover",
                                    help="Then recompute the shape space, maps, anomaly scores and clusters."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
) -> None:
    """Measure morphology parameters (cutouts) and spectral indices (spectra) into the catalogue, then rediscover."""
    from backend.discovery import discover
    from backend.shape_space import build_shape_space
    from backend.spaces import list_spaces
    from backend.store import open_atlas
    from embeddings.pipeline import measure_catalogue

    opened = open_atlas(_atlas(atlas))
    if not opened.has_table("objects") or opened.count("objects") == 0:
        raise UserError(f"atlas {opened.uri} has no objects; ingest some first")
    measure_catalogue(opened, progress=not no_progress)
    if not rediscover:
        return
    if not list_spaces(opened):
        print("measure: no embedding space yet, so no maps or anomaly scores: run `embed`, then `measure` again")
        return
    build_shape_space(opened)
    discover(opened)


@app.command("export")
def export_cmd(
    atlas: str = AtlasOpt,
    tag: str = typer.Option(None, "--tag", help="Objects currently carrying this tag."),
    ids: str = typer.Option(None, "--ids", help="File of object ids (one per line, or a CSV with an object_id column)."),
    cluster: str = typer.Option(None, "--cluster", help="SPACE:N, the members of cluster N of a space."),
    top_anomalies: str = typer.Option(None, "--top-anomalies", help="SPACE:N, the N most anomalous objects of a space."),
    fmt: str = typer.Option(None, "--format", help="csv | fits | votable (default: from the --out suffix)."),
    out: str = typer.Option(..., "--out", help="Output file."),
) -> None:
    """Export a selection (a tag, an id list, a cluster or the top anomalies) with its catalogue columns."""
    from backend import export, selection
    from backend.store import open_atlas

    chosen = [name for name, value in (("--tag", tag), ("--ids", ids), ("--cluster", cluster), ("--top-anomalies", top_anomalies)) if value]
    if len(chosen) != 1:
        raise UserError(f"choose exactly one of --tag, --ids, --cluster, --top-anomalies (got {', '.join(chosen) or 'none'})")
    fmt = export.format_for(out, fmt)
    opened = open_atlas(_atlas(atlas))
    missing: list[str] = []
    if tag:
        frame, name = selection.by_tag(opened, tag), f"tag {tag}"
    elif ids:
        frame, missing = selection.by_ids(opened, selection.read_ids_file(ids))
        name = f"ids from {os.path.basename(ids)}"
    elif cluster:
        space, number = selection.parse_space_n(cluster, "--cluster")
        frame, name = selection.by_cluster(opened, space, number), f"cluster {number} of {space}"
    else:
        space, number = selection.parse_space_n(top_anomalies, "--top-anomalies")
        frame, name = selection.by_top_anomalies(opened, space, number), f"top {number} anomalies of {space}"
    path = export.write_table(export.selection_table(opened, frame, name=name), out, fmt)
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        print(f"warning: {len(missing)} id(s) not in the atlas, skipped: {shown}", file=sys.stderr)
    print(f"export: {len(frame)} objects ({name}) -> {path} ({fmt})")


@app.command("scale")
def scale_cmd(
    atlas: str = typer.Option(..., "--atlas", help="New atlas folder or URI for the load-test atlas."),
    source: str = typer.Option(None, "--source", help="Built demo atlas to copy from (default: $ARP_ATLAS or data/atlases/sdss10k)."),
    n: int = typer.Option(1_000_000, "--n", min=1, help="Objects to write."),
    seed: int = typer.Option(0, "--seed"),
    pixels_every: int = typer.Option(100, "--pixels-every", min=1, help="Copy pixels and spectra onto every Nth object only."),
) -> None:
    """Build a large atlas for load testing from a demo atlas (jittered copies: for performance, not science)."""
    import time

    from embeddings.scale import build_scale_atlas

    started = time.perf_counter()
    built = build_scale_atlas(atlas, _atlas(source), n=n, seed=seed, pixels_every=pixels_every)
    print(f"scale: {built.count('objects')} objects in {built.uri} in {time.perf_counter() - started:.0f} s")


@app.command("dedupe")
def dedupe_cmd(
    atlas: str = AtlasOpt,
    table: list[str] = typer.Option(None, "--table", help="Table to repair (repeatable; default: every upserted table)."),
) -> None:
    """Keep one row (the newest) per key in tables damaged by concurrent writers, then declare their keys."""
    from backend import schema
    from backend.store import open_atlas

    opened = open_atlas(_atlas(atlas))
    names = table or [name for name in opened.table_names() if schema.table_key(name)]
    for name in names:
        dropped = opened.dedupe(name)
        print(f"dedupe: {name}: {dropped} duplicate row(s) deleted, key {schema.table_key(name)} declared")
