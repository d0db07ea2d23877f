"""Cutout display: Legacy Survey style g,r,z -> RGB composite with an arcsinh stretch, PNG thumbnails."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Legacy Survey viewer (legacysurvey/imagine map/views.py): band -> (RGB plane, scale); z -> red, r -> green,
# g (and u) -> blue. The pretrained encoders' viewer RGB uses the same table.
VIEWER_RGB: dict[str, tuple[int, float]] = {"u": (2, 1.5), "g": (2, 6.0), "r": (1, 3.4), "i": (0, 1.0), "z": (0, 2.2)}
DISPLAY_BANDS = ("g", "r", "i", "z")  # the display composite leaves u out (g holds the blue plane)


def row_cube(row: dict, *, fill_nonfinite: bool = True) -> np.ndarray:
    """A row's image as a float32 bands x H x W cube (NaN/inf -> 0 unless told); ValueError if missing or malformed."""
    image, shape = row.get("image"), row.get("image_shape")
    if image is None or len(image) == 0:
        raise ValueError("no cutout")
    cube = np.asarray(image, dtype=np.float32)
    if shape is not None and len(shape):
        shape = tuple(int(s) for s in shape)
        if int(np.prod(shape)) != cube.size:
            raise ValueError(f"image has {cube.size} values but image_shape says {shape}")
        cube = cube.reshape(shape)
    if cube.ndim == 2:
        cube = cube[None]
    if cube.ndim != 3:
        raise ValueError(f"image must be bands x H x W, got shape {cube.shape}")
    return np.nan_to_num(cube, nan=0.0, posinf=0.0, neginf=0.0) if fill_nonfinite else cube


def rgb_composite(image: np.ndarray, bands: list[str] | tuple[str, ...], *, q: float = 15.0, m: float = 0.0) -> np.ndarray:
    """Map a bands x H x W cube (nanomaggies) to an H x W x 3 float RGB in [0, 1] (arcsinh stretch)."""
    cube = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if cube.ndim == 2:
        cube = cube[None]
    if cube.shape[0] == 1 or not bands:
        grey = cube[0]
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        scale = np.percentile(np.abs(grey), 99.5) or 1.0
        return np.clip(np.arcsinh(q * rgb / scale) / np.arcsinh(q), 0.0, 1.0)
    h, w = cube.shape[1:]
    rgb = np.zeros((h, w, 3), np.float32)
    filled = np.zeros(3, bool)
    for plane, band in zip(cube, bands, strict=False):
        if band.lower() not in DISPLAY_BANDS:
            continue
        channel, scale = VIEWER_RGB[band.lower()]
        rgb[..., channel] = np.maximum(0.0, plane * scale - m)
        filled[channel] = True
    if not filled.all():  # fewer than three mapped bands: fill gaps with the mean of the others
        mean = rgb[..., filled].mean(axis=-1) if filled.any() else cube.mean(axis=0)
        for c in np.flatnonzero(~filled):
            rgb[..., c] = mean
    intensity = rgb.mean(axis=-1, keepdims=True)
    stretched = np.arcsinh(q * intensity) / q
    rgb = rgb * np.where(intensity > 0, stretched / np.maximum(intensity, 1e-12), 0.0)
    return np.clip(rgb, 0.0, 1.0)


def png_bytes(rgb: np.ndarray, size: int | None = None, compress_level: int = 6) -> bytes:
    """Encode an H x W x 3 float RGB in [0, 1] as PNG, optionally resized to size x size (zlib level 1: fast, for
    display; 6: smaller, for storage)."""
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=compress_level)
    return buf.getvalue()


def thumbnail_png(image: np.ndarray, bands: list[str] | tuple[str, ...], size: int = 96) -> bytes:
    """The PNG thumbnail stored with each object for galleries."""
    return png_bytes(rgb_composite(image, bands), size=size)


NICE_BAR_ARCSEC = (0.5, 1, 2, 3, 5, 10, 15, 20, 30, 60, 120, 300, 600)


def bar_length_arcsec(width_px: int, pixel_scale: float, fraction: float = 0.3) -> float:
    """The longest round length (arcsec) no longer than `fraction` of the image width."""
    target = fraction * width_px * pixel_scale
    fitting = [b for b in NICE_BAR_ARCSEC if b <= target]
    return float(fitting[-1] if fitting else NICE_BAR_ARCSEC[0])


def with_scale_bar(rgb: np.ndarray, pixel_scale: float, out_size: int) -> bytes:
    """PNG of an RGB image resized to out_size, with a white scale bar and its length in arcsec (lower left)."""
    from PIL import ImageDraw

    h, w = rgb.shape[:2]
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).resize((out_size, out_size), Image.Resampling.LANCZOS)
    length = bar_length_arcsec(w, pixel_scale)
    px = length / pixel_scale * out_size / w
    draw = ImageDraw.Draw(img)
    x0, y0 = int(0.06 * out_size), int(0.92 * out_size)
    draw.rectangle([x0, y0, x0 + round(px), y0 + max(2, out_size // 100)], fill=(255, 255, 255))
    draw.text((x0, y0 - max(12, out_size // 18)), f'{length:g}"', fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # 8 ms instead of 45 for a 256 px cutout, 20% larger
    return buf.getvalue()
