"""Images/s and spectra/s of each pretrained encoder family at its real architecture size.

Random weights (throughput does not depend on the values; no download needed). Two figures per encoder:
`preprocess` (numpy recipe per object, one process) and `forward` (model on an in-memory batch).
Prints JSON lines. Usage: python benchmarks/encoders_cpu.py [--batch 8] [--batches 2] [--only astroclip-image,...]
(`--only arp-morphology,arp-spectrum,arp-pair-image,arp-pair-spectrum`: the builtin family with its committed weights)
[--device cuda --precision bf16]  (the same script gives GPU figures on a GPU machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.spectra import desi_wavelength  # noqa: E402
from embeddings.encoders.base import SurveyContext  # noqa: E402

SURVEY = SurveyContext(bands=("g", "r", "z"), pixel_scale=0.262, wavelength=desi_wavelength())


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"{os.cpu_count()}-core CPU ({platform.machine()}), torch threads {torch.get_num_threads()}, shared"


def demo_rows(n: int, size: int = 64) -> list[dict]:
    """Galaxy-like g,r,z cutouts and DESI-grid spectra (synthetic, for timing only)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size] - size / 2
    wave = desi_wavelength()
    rows = []
    for _ in range(n):
        blob = np.exp(-(x**2 + y**2) / rng.uniform(20, 80))
        cube = np.stack([blob * s for s in (0.4, 1.0, 1.5)]) + rng.normal(0, 0.01, (3, size, size))
        flux = 2 + np.sin(wave / rng.uniform(200, 400)) + rng.normal(0, 0.2, wave.size)
        rows.append({"image": cube.astype(np.float32).ravel(), "image_shape": [3, size, size],
                     "spectrum_flux": flux.astype(np.float32), "spectrum_ivar": np.ones(wave.size, np.float32)})
    return rows


def build(name: str):
    """The encoder `name` with random weights at its published size."""
    if name == "astroclip-image":
        from embeddings.encoders.astroclip import AstroClipImageEncoder
        from embeddings.models.astroclip_model import ImageTower

        return AstroClipImageEncoder(ImageTower().eval(), "random-init")
    if name == "astroclip-spectrum":
        from embeddings.encoders.astroclip import AstroClipSpectrumEncoder
        from embeddings.models.astroclip_model import SpectrumTower

        return AstroClipSpectrumEncoder(SpectrumTower().eval(), "random-init")
    if name == "specformer-spectrum":
        from embeddings.encoders.astroclip import SpecFormerEncoder
        from embeddings.models.astroclip_specformer import SpecFormer, SpecFormerConfig

        return SpecFormerEncoder(SpecFormer(SpecFormerConfig()).eval(), "random-init")
    if name == "zoobot":
        import timm

        from embeddings.encoders.zoobot import ZoobotEncoder

        return ZoobotEncoder(timm.create_model("convnext_nano", num_classes=0), "convnext_nano", "random-init")
    if name == "astropt":
        from embeddings.encoders.astropt import AstroPTEncoder
        from embeddings.models.astropt_gpt import AstroPT, GPTConfig, Modality

        cfg = GPTConfig(block_size=1024, n_layer=12, n_head=12, n_embd=768, modalities=(Modality("images", 768, 16),))
        return AstroPTEncoder(AstroPT(cfg), "random-init")
    if name == "openclip-image":
        import open_clip

        from embeddings.encoders.openclip import OpenClipImageEncoder

        model = open_clip.create_model("ViT-B-32")
        return OpenClipImageEncoder(model, open_clip.get_tokenizer("ViT-B-32"), "openclip-image", "random-init")
    if name.startswith("arp-"):  # Arp's builtin family, with its committed weights (safetensors)
        from embeddings.encoders.registry import get_encoder

        return get_encoder(name)
    raise KeyError(name)


def run(name: str, rows: list[dict], batch: int, batches: int, device: str, precision: str) -> list[dict]:
    enc = build(name).to(device)
    unit = "spectra/s" if enc.modality == "spectrum" else "images/s"
    n_params = sum(p.numel() for p in enc.model.parameters())
    prep = enc.preprocessor()
    t0 = time.perf_counter()
    inputs = np.stack([prep(r, SURVEY) for r in rows[:batch]])
    t_prep = time.perf_counter() - t0
    x = torch.from_numpy(inputs)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
                if device.startswith("cuda") and precision != "fp32" else nullcontext())
    with autocast:
        enc.embed(x[:2])  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(batches):
            enc.embed(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t_fwd = time.perf_counter() - t0
    records = []
    if device.startswith("cuda") and precision != "fp32":
        records.append({"benchmark": "encoder_autocast_agreement", **_agreement(enc, x, autocast), "unit": "cosine"})
    common = {"encoder": name, "machine": machine(device), "device": device, "precision": precision, "batch": batch,
              "params_m": round(n_params / 1e6, 1), "input_shape": list(inputs.shape[1:]),
              "weights": "random-init, real architecture size"}
    records = [{**r, **common} for r in records]
    return records + [
        {"benchmark": "encoder_forward", "value": round(batch * batches / t_fwd, 2), "unit": unit, **common},
        {"benchmark": "encoder_preprocess", "value": round(batch / t_prep, 1), "unit": unit, **common},
    ]


def _agreement(enc, x: torch.Tensor, autocast) -> dict:
    """Cosine similarity between fp32 vectors and the same batch's vectors under autocast (min and median)."""
    reference = np.asarray(enc.embed(x), dtype=np.float64)
    with autocast:
        reduced = np.asarray(enc.embed(x), dtype=np.float64)
    cos = (reference * reduced).sum(1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(reduced, axis=1))
    return {"value": round(float(np.median(cos)), 6), "min": round(float(cos.min()), 6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--only", default="astroclip-image,astroclip-spectrum,zoobot,astropt,openclip-image")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = ap.parse_args()
    rows = demo_rows(args.batch)
    torch.manual_seed(0)
    for name in args.only.split(","):
        for record in run(name.strip(), rows, args.batch, args.batches, args.device, args.precision):
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
