"""Embedding pipeline efficiency: end-to-end job throughput / forward-only throughput of the same model.

End-to-end = `embeddings.job.run_embedding` on an atlas (Lance reads, preprocessing, DataLoader,
forward, vector upserts; index building off). Forward-only = `encoder.embed` on the same objects
already preprocessed into an in-memory tensor, same batch size, same device. Prints JSON lines.

    python benchmarks/embed_pipeline.py [--n 3000] [--atlas DIR] [--workers 0,1] [--device cpu] [--engine local|ray]
        [--encoders arp-pair-image,arp-pair-spectrum | astroclip-image,astroclip-spectrum,zoobot,astropt,specformer-spectrum]

The pretrained families run at their published size with random weights. Ray's actors build their encoder by name
from a weights file, so with `--engine ray` Zoobot's random weights are first written as a timm safetensors file, and
SpecFormer's (AstroCLIP's spectrum backbone) as a Lightning checkpoint, and passed as the checkpoint (the other
families: local engine only).

With `--engine ray` the end-to-end run is `embeddings.ray_engine.run_embedding_ray` on a local Ray instance
(`--workers` = encoder actors, at least 1); starting the instance is outside the timed runs, but each job's actor
start-up and planning are inside. A second job of n/6 objects separates the two: `embed_steady_state` is the rate
beyond that fixed cost ((n - n/6) / the difference of the two times), with the cost itself as `startup_s`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import numpy as np
from bench_common import emit, scratch_folder

from backend import schema
from backend.spectra import desi_wavelength
from backend.store import Atlas, open_atlas
from embeddings.data import iter_rows, survey_contexts
from embeddings.encoders.base import Encoder, SurveyContext
from embeddings.encoders.builtin import DEFAULT_WEIGHTS
from embeddings.encoders.registry import get_encoder
from embeddings.job import resolve_device, run_embedding


def synthetic_atlas(path: str, n: int, seed: int = 0):
    """n objects shaped like the demo: 3 x 64 x 64 g,r,z cutouts and 7781-pixel DESI spectra."""
    rng = np.random.default_rng(seed)
    atlas = open_atlas(path, create=True)
    atlas.register_survey("synth", bands=["g", "r", "z"], pixel_scale=0.262, image_shape=[3, 64, 64],
                          wavelength=desi_wavelength())
    yy, xx = np.mgrid[:64, :64] - 32
    for start in range(0, n, 1000):
        rows = []
        for i in range(start, min(n, start + 1000)):
            blob = np.exp(-(xx**2 + yy**2) / (2 * rng.uniform(1.5, 6) ** 2))
            cube = np.stack([blob * f for f in rng.uniform(0.1, 2, 3)]) + rng.normal(0, 0.01, (3, 64, 64))
            rows.append({"object_id": f"b{i:07d}", "survey": "synth", "split": "train", "redshift": 0.1,
                         "image": cube.astype(np.float32).ravel(), "image_shape": [3, 64, 64],
                         "spectrum_flux": (1 + rng.normal(0, 0.1, 7781)).astype(np.float32),
                         "spectrum_ivar": np.full(7781, 100.0, np.float32)})
        atlas.upsert(schema.OBJECTS, rows)
    return atlas


def make_encoder(name: str):
    """A builtin encoder with its committed weights; a pretrained family at its published size, random weights
    (throughput does not depend on the values, and nothing is downloaded: see benchmarks/encoders_cpu.py)."""
    if not name.startswith("arp-"):
        from encoders_cpu import build

        return build(name)
    return get_encoder(name) if DEFAULT_WEIGHTS.is_file() else get_encoder(name, random_init=True)


def forward_only(encoder, atlas, batch_size: int, limit: int) -> tuple[float, int]:
    """Objects/s of encoder.embed alone on preprocessed in-memory tensors."""
    import torch

    surveys = survey_contexts(atlas)
    pre = encoder.preprocessor()
    inputs = []
    for row in iter_rows(atlas, ["survey", *encoder.input_columns()]):
        inputs.append(pre(row, surveys.get(row["survey"], SurveyContext())))
        if len(inputs) >= limit:
            break
    x = torch.from_numpy(np.stack(inputs))
    encoder.embed(x[:batch_size])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(x), batch_size):
        encoder.embed(x[i : i + batch_size])
    return len(x) / (time.perf_counter() - t0), len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--atlas", default=None, help="copy this atlas instead of building a synthetic one")
    parser.add_argument("--encoders", default="arp-pair-image,arp-pair-spectrum")
    parser.add_argument("--workers", default="0")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine", default="local", choices=["local", "ray"])
    args = parser.parse_args()
    if args.engine == "ray":
        from embeddings.ray_engine import ensure_ray

        ensure_ray()
    device = resolve_device(args.device)
    with scratch_folder("arp-pipe-") as root:
        if args.atlas:
            shutil.copytree(args.atlas, os.path.join(root, "src"))
            atlas = open_atlas(os.path.join(root, "src"))
        else:
            atlas = synthetic_atlas(os.path.join(root, "src"), args.n)
        n = min(args.n, atlas.count(schema.OBJECTS))
        for name in args.encoders.split(","):
            encoder = make_encoder(name).to(device)
            table = schema.vectors_table(encoder.name, encoder.modality)
            for workers in (int(w) for w in args.workers.split(",")):
                fwd_runs, e2e_runs, seconds = [], [], {n: [], n // 6: []}
                for _ in range(args.repeats):  # interleaved, medians: the machine is shared and noisy
                    fwd_runs.append(forward_only(encoder, atlas, args.batch_size, n)[0])
                    for limit in seconds if args.engine == "ray" else (n,):
                        if atlas.has_table(table):
                            atlas.db.drop_table(table)
                        t0 = time.perf_counter()
                        embedded = run_job(atlas, name, encoder, device, args, workers, limit)
                        seconds[limit].append(time.perf_counter() - t0)
                        if limit == n:
                            e2e_runs.append(embedded / seconds[n][-1])
                fwd, e2e = float(np.median(fwd_runs)), float(np.median(e2e_runs))
                tags = {"encoder": name, "device": device, "batch": args.batch_size, "workers": workers, "n": n,
                        "repeats": args.repeats, "engine": args.engine}
                emit("embed_forward_only", fwd, "objects/s", **tags)
                emit("embed_end_to_end", e2e, "objects/s", **tags)
                emit("embed_pipeline_efficiency", e2e / fwd, "ratio", **tags)
                if args.engine == "ray":  # a run of n/6 objects against one of n: Ray's fixed start-up, then its rate
                    small, full = float(np.median(seconds[n // 6])), float(np.median(seconds[n]))
                    rate = (n - n // 6) / max(full - small, 1e-9)
                    emit("embed_steady_state", rate, "objects/s", startup_s=round(small - (n // 6) / rate, 1), **tags)
                    emit("embed_steady_state_efficiency", rate / fwd, "ratio", **tags)


def weights_file(name: str, encoder: Encoder, folder: str) -> str | None:
    """The encoder's weights as a file its registry factory loads (Zoobot: timm safetensors; SpecFormer: a Lightning
    checkpoint as published); None for the builtin pair (committed weights). Other families: not on Ray here."""
    if name.startswith("arp-"):
        return None
    if name == "specformer-spectrum":
        import dataclasses

        import torch

        path = os.path.join(folder, "specformer-random.ckpt")
        if not os.path.exists(path):
            torch.save({"state_dict": encoder.model.state_dict(),
                        "hyper_parameters": dataclasses.asdict(encoder.model.cfg)}, path)
        return path
    if name != "zoobot":
        raise SystemExit(f"--engine ray runs the builtin pair, zoobot or specformer-spectrum here, not {name}")
    from safetensors.torch import save_file

    path = os.path.join(folder, "zoobot-random.safetensors")
    if not os.path.exists(path):
        save_file({k: v.contiguous() for k, v in encoder.model.state_dict().items()}, path)
    return path


def run_job(atlas: Atlas, name: str, encoder: Encoder, device: str, args: argparse.Namespace, workers: int, limit: int) -> int:
    """One embedding job of `limit` objects on the chosen engine; the number embedded."""
    if args.engine == "ray":
        from embeddings.ray_engine import run_embedding_ray

        checkpoint = weights_file(name, encoder, os.path.dirname(atlas.uri))
        return run_embedding_ray(atlas, name, device=device, batch_size=args.batch_size, workers=max(1, workers),
                                 limit=limit, progress=False, index=False, checkpoint=checkpoint).embedded
    return run_embedding(atlas, name, encoder=encoder, device=device, batch_size=args.batch_size, workers=workers,
                         limit=limit, progress=False, index=False).embedded


if __name__ == "__main__":
    main()
