"""g, r, z cutouts rendered with GalSim: bulge + disk (+ bar), knots and arms, rare morphologies, artefacts.

Smooth components are GalSim profiles convolved with a per-band Moffat PSF. Clumpy structure (knots from
galsim.RandomKnots, spiral arms, rings, tidal tails, lensed arcs) is a list of small Gaussian blobs drawn
separably in numpy and convolved with the same GalSim PSF image, which keeps a 10k build within budget.
Pixel unit: nanomaggies per pixel, as in Legacy Survey cutouts.
"""

from __future__ import annotations

import galsim
import numpy as np
from scipy.signal import fftconvolve

BANDS = ("g", "r", "z")
STAMP = 64
PIXEL_SCALE = 0.262  # arcsec / pixel (Legacy Survey)
SKY_SIGMA = np.array([0.0068, 0.012, 0.027])  # per-pixel noise, nmgy, for ~24.0/23.4/22.5 5-sigma depths
PSF_BAND_SCALE = np.array([1.06, 1.0, 0.93])  # seeing ~ lambda^-0.2
_GSP = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3, maximum_fft_size=4096)
_TRUNC_HLR = 6.0  # Sersic truncation radius in half-light radii (a fixed ratio keeps GalSim's profile cache warm)
_COORD = (np.arange(STAMP) - (STAMP - 1) / 2) * PIXEL_SCALE  # pixel centres, arcsec

# Relative colour of each kind of component (g, r, z multipliers before renormalising to the SED fluxes).
COLOUR = {
    "bulge": np.array([0.80, 1.0, 1.22]),
    "disk": np.array([1.08, 1.0, 0.92]),
    "knots": np.array([1.35, 1.0, 0.78]),
    "bar": np.array([0.9, 1.0, 1.1]),
}


class Blobs:
    """Round Gaussian blobs: x, y, sigma (arcsec), flux (a fraction of the r-band flux, or nmgy), colour [g, r, z]."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, x, y, sigma, flux, colour) -> None:
        x, y, sigma, flux = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, np.float64)) for v in (x, y, sigma, flux)))
        self.parts.append((x, y, sigma, flux, np.broadcast_to(np.asarray(colour, np.float64), (len(x), 3))))

    def band_totals(self) -> np.ndarray:
        """Sum of flux x colour per band (before band_scale)."""
        if not self.parts:
            return np.zeros(3)
        return sum((p[3][:, None] * p[4]).sum(axis=0) for p in self.parts)

    def image(self, band_scale: np.ndarray) -> np.ndarray:
        """Unconvolved [3, H, W] image, each band multiplied by band_scale."""
        out = np.zeros((3, STAMP, STAMP))
        if not self.parts:
            return out
        x, y, s, f, c = (np.concatenate(p) for p in zip(*self.parts, strict=True))
        s = np.hypot(s, PIXEL_SCALE / np.sqrt(12))
        gx = np.exp(-0.5 * ((_COORD[None, :] - x[:, None]) / s[:, None]) ** 2)
        gy = np.exp(-0.5 * ((_COORD[None, :] - y[:, None]) / s[:, None]) ** 2)
        norm = PIXEL_SCALE**2 / (2 * np.pi * s**2)
        for b in range(3):
            w = f * c[:, b] * band_scale[b] * norm
            out[b] = (gy * w[:, None]).T @ gx
        return out


def _project(x: np.ndarray, y: np.ndarray, cos_i: float, pa_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Face-on disk coordinates -> sky: squash by cos(i), rotate by the position angle."""
    y = y * cos_i
    t = np.radians(pa_deg)
    return x * np.cos(t) - y * np.sin(t), x * np.sin(t) + y * np.cos(t)


def _arms(rng: np.random.Generator, hlr: float, flux: float, cos_i: float, pa: float, blobs: Blobs, colour) -> None:
    """Logarithmic spiral arms traced by blobs (2 grand-design arms, or 3-4 flocculent ones)."""
    n_arms = 2 if rng.random() < 0.7 else int(rng.integers(3, 5))
    pitch = np.radians(rng.uniform(12, 28))
    r0 = 0.35 * hlr
    t = np.linspace(0, rng.uniform(2.5, 4.0), 22)
    per = flux / (n_arms * len(t))
    for arm in range(n_arms):
        phase = 2 * np.pi * arm / n_arms + rng.uniform(-0.3, 0.3)
        r = r0 * np.exp(t * np.tan(pitch))
        keep = r < 3.2 * hlr
        ang = t + phase
        x, y = r * np.cos(ang), r * np.sin(ang)
        x, y = _project(x + rng.normal(0, 0.05 * hlr, len(x)), y + rng.normal(0, 0.05 * hlr, len(y)), cos_i, pa)
        w = per * np.exp(-r / (2.5 * hlr)) * rng.uniform(0.5, 1.5, len(r))
        blobs.add(x[keep], y[keep], np.maximum(0.25, 0.12 * hlr), w[keep], colour)


def _knots(rng: np.random.Generator, hlr: float, flux: float, count: int, cos_i: float, pa: float, blobs: Blobs,
           shift=(0.0, 0.0)) -> None:
    """Star-forming knots at positions sampled by galsim.RandomKnots from the disk profile."""
    knots = galsim.RandomKnots(count, half_light_radius=hlr, flux=flux, rng=galsim.BaseDeviate(int(rng.integers(1, 2**30))))
    pts = np.asarray(knots.points)
    x, y = _project(pts[:, 0] + shift[0], pts[:, 1] + shift[1], cos_i, pa)
    blobs.add(x, y, rng.uniform(0.12, 0.3, count), flux * rng.dirichlet(np.ones(count)), COLOUR["knots"])


def _smooth(kind: str, p: dict, rng: np.random.Generator) -> list[tuple[galsim.GSObject, np.ndarray, float]]:
    """GalSim smooth components as (unit-flux profile, colour, r-band flux fraction)."""
    hlr, pa, incl = p["half_light_radius"], p["pa"], p["inclination"]
    beta = pa * galsim.degrees
    out = []
    if kind in ("elliptical", "lens"):
        n = float(rng.choice([3.0, 3.5, 4.0]))  # a few indices only: GalSim caches each Sersic's Hankel table
        prof = galsim.Sersic(n=n, half_light_radius=hlr, trunc=_TRUNC_HLR * hlr, gsparams=_GSP).shear(q=rng.uniform(0.55, 1.0), beta=beta)
        out.append((prof, COLOUR["bulge"], 1.0))
        return out
    if kind == "irregular":
        disk = galsim.Exponential(half_light_radius=hlr, gsparams=_GSP).shear(q=rng.uniform(0.4, 0.9), beta=beta)
        out.append((disk.shift(*rng.normal(0, 0.15 * hlr, 2)), COLOUR["disk"], 1.0))
        return out
    bt = {"s0": rng.uniform(0.35, 0.65), "spiral": rng.uniform(0.05, 0.35), "barred_spiral": rng.uniform(0.08, 0.3),
          "edge_on": rng.uniform(0.05, 0.35), "ring": 0.5, "merger": rng.uniform(0.2, 0.6)}.get(kind, 0.3)
    bulge_hlr = max(0.25, 0.3 * hlr)
    bulge = galsim.DeVaucouleurs(half_light_radius=bulge_hlr, trunc=_TRUNC_HLR * bulge_hlr, gsparams=_GSP).shear(q=rng.uniform(0.7, 1.0), beta=beta)
    inc = galsim.Angle(float(np.radians(min(incl, 89.5))), galsim.radians)
    h_ratio = 0.08 if kind == "edge_on" else 0.15
    if p["rare_class"] == "dust_lane":  # thick, bulgy (Sombrero-like) hosts: the lane splits the light in two
        h_ratio, bt = rng.uniform(0.18, 0.26), rng.uniform(0.25, 0.5)
    disk = galsim.InclinedExponential(inc, half_light_radius=hlr, scale_h_over_r=h_ratio, gsparams=_GSP)
    disk = disk.rotate(pa * galsim.degrees)  # GalSim inclines about the x axis: the major axis starts along x
    out.append((bulge, COLOUR["bulge"], bt))
    disk_frac = 1.0 - bt
    if kind == "barred_spiral":
        bar_frac = rng.uniform(0.08, 0.15)
        bar_pa = pa + rng.uniform(-60, 60)
        bar = galsim.Sersic(n=0.5, half_light_radius=0.55 * hlr, gsparams=_GSP).shear(q=0.28, beta=bar_pa * galsim.degrees)
        out.append((bar, COLOUR["bar"], bar_frac))
        disk_frac -= bar_frac
    out.append((disk, COLOUR["disk"], disk_frac))
    return out


def _psfs(fwhm_r: float) -> list[galsim.GSObject]:
    """Per-band Moffat PSFs (seeing scales as lambda^-0.2)."""
    return [galsim.Moffat(beta=3.5, fwhm=fwhm_r * s, gsparams=_GSP) for s in PSF_BAND_SCALE]


def _draw_smooth(components, band_flux: np.ndarray, psf: galsim.GSObject) -> np.ndarray:
    prof = galsim.Add([c.withFlux(f) for c, f in zip(components, band_flux, strict=True)])
    img = galsim.ImageF(STAMP, STAMP, scale=PIXEL_SCALE)
    galsim.Convolve(prof, psf, real_space=False, gsparams=_GSP).drawImage(image=img, method="auto")
    return img.array.astype(np.float64)


def _draw_unconvolved(components, band_flux: np.ndarray) -> np.ndarray:
    """PSF-free image sampled 2x finer and binned (approximates the pixel integral) for dust screening."""
    prof = galsim.Add([c.withFlux(f) for c, f in zip(components, band_flux, strict=True)])
    img = galsim.ImageF(2 * STAMP, 2 * STAMP, scale=PIXEL_SCALE / 2)
    prof.drawImage(image=img, method="no_pixel")
    return img.array.astype(np.float64).reshape(STAMP, 2, STAMP, 2).sum(axis=(1, 3))


def _psf_image(psf: galsim.GSObject, method: str = "auto") -> np.ndarray:
    return psf.drawImage(nx=STAMP - 1, ny=STAMP - 1, scale=PIXEL_SCALE, method=method).array.astype(np.float64)


def _band_split(fractions: np.ndarray, colours: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Per-component per-band fluxes [n_comp, 3] that add up to the given band fluxes."""
    raw = fractions[:, None] * colours
    return raw * (total / np.maximum(raw.sum(axis=0), 1e-30))[None, :]


def render(p: dict, seed: int) -> np.ndarray:
    """The [3, 64, 64] float32 g, r, z cutout (nanomaggies/pixel) of one demo object."""
    rng = np.random.default_rng([seed, int(p["row"]), 2])
    kind, rare = p["morphology"], p["rare_class"]
    total = np.array([p["flux_g"], p["flux_r"], p["flux_z"]], np.float64)
    hlr, pa = float(p["half_light_radius"]), float(p["pa"])
    cos_i = float(np.cos(np.radians(p["inclination"])))
    psfs = _psfs(float(p["psf_fwhm"]))
    clumps = Blobs()  # knots, arms, rings, tails: part of the catalogued galaxy's light
    extra = Blobs()  # light outside the galaxy's SED (the lensed background source), in nmgy

    smooth = _smooth(kind, p, rng)
    if kind in ("spiral", "barred_spiral"):
        frac = rng.uniform(0.15, 0.3)
        _arms(rng, hlr, 0.6 * frac, cos_i, pa, clumps, 0.5 * (COLOUR["disk"] + COLOUR["knots"]))
        _knots(rng, hlr, 0.4 * frac, int(rng.integers(15, 40)), cos_i, pa, clumps)
    elif kind == "irregular":
        _knots(rng, 1.2 * hlr, rng.uniform(0.35, 0.6), int(rng.integers(20, 50)), rng.uniform(0.5, 1.0), pa, clumps,
               shift=tuple(rng.normal(0, 0.3 * hlr, 2)))
    elif kind == "edge_on":
        _knots(rng, hlr, rng.uniform(0.03, 0.08), int(rng.integers(10, 25)), cos_i, pa, clumps)
    elif kind == "ring":
        _ring(rng, hlr, rng.uniform(0.45, 0.65), pa, clumps)
    elif kind == "merger":
        _merger(rng, hlr, rng.uniform(0.35, 0.55), pa, clumps)
    elif kind == "lens":
        _lensed_arc(rng, total, extra)

    # Clumps take their share of each band (capped at 60 %); the smooth light carries the rest of the SED.
    clump_share = clumps.band_totals() * total
    clump_scale = total * np.minimum(1.0, 0.6 * total / np.maximum(clump_share, 1e-30))
    clump_flux = clumps.band_totals() * clump_scale
    band_flux = _band_split(np.array([f for _, _, f in smooth]), np.array([c for _, c, _ in smooth]),
                            np.maximum(total - clump_flux, 0.0))
    components = [c for c, _, _ in smooth]
    unconvolved = clumps.image(clump_scale) + extra.image(np.ones(3))

    image = np.empty((3, STAMP, STAMP))
    dust = _dust_screen(rng, hlr, pa) if rare == "dust_lane" else None
    for b in range(3):
        if dust is None:
            image[b] = _draw_smooth(components, band_flux[:, b], psfs[b])
            if unconvolved[b].any():
                image[b] += fftconvolve(unconvolved[b], _psf_image(psfs[b]), mode="same")
        else:
            screened = (_draw_unconvolved(components, band_flux[:, b]) + unconvolved[b]) * dust[b]
            image[b] = fftconvolve(screened, _psf_image(psfs[b], "no_pixel"), mode="same")
        if rare == "agn":
            nucleus = psfs[b].withFlux(_agn_point(p, b)).drawImage(nx=STAMP, ny=STAMP, scale=PIXEL_SCALE, method="auto")
            image[b] += nucleus.array
    sky = SKY_SIGMA * float(p["sky_scale"])
    if rare == "artefact":
        _artefact(image, rng, p["artefact"], psfs, sky)
    image += rng.standard_normal(image.shape) * sky[:, None, None]
    return image.astype(np.float32)


def _ring(rng, hlr, frac, pa, blobs: Blobs) -> None:
    """Collisional ring: a knotty blue ring, brighter on one side, around an offset nucleus."""
    radius = min(rng.uniform(1.6, 2.6) * max(hlr, 1.2), 7.0)
    count = 36
    ang = np.linspace(0, 2 * np.pi, count, endpoint=False) + rng.normal(0, 0.05, count)
    rr = radius * (1 + rng.normal(0, 0.04, count))
    bright = 1 + 0.8 * np.cos(ang - rng.uniform(0, 2 * np.pi))
    x, y = _project(rr * np.cos(ang), rr * np.sin(ang), rng.uniform(0.55, 1.0), pa)
    blobs.add(x, y, rng.uniform(0.25, 0.5, count) * max(1.0, radius / 4), frac * bright / bright.sum(), COLOUR["knots"])


def _merger(rng, hlr, frac, pa, blobs: Blobs) -> None:
    """A companion and two curved tidal tails (low surface brightness blobs)."""
    sep = rng.uniform(1.0, 2.2) * max(hlr, 1.0)
    theta = rng.uniform(0, 2 * np.pi)
    cx, cy = sep * np.cos(theta), sep * np.sin(theta)
    comp = 0.5 * frac
    blobs.add(cx + rng.normal(0, 0.15, 6), cy + rng.normal(0, 0.15, 6), 0.45 * max(hlr, 0.8), comp / 6, COLOUR["bulge"])
    tails = frac - comp
    for origin, sign in (((0.0, 0.0), 1), ((cx, cy), -1)):
        start = rng.uniform(0, 2 * np.pi)
        t = np.linspace(0, 1, 20)
        r = (0.5 + 3.5 * t) * max(hlr, 1.2)
        ang = start + sign * rng.uniform(1.5, 2.5) * t
        x = origin[0] + r * np.cos(ang)
        y = origin[1] + r * np.sin(ang)
        w = np.exp(-1.5 * t)
        blobs.add(x, y, 0.5 + 0.6 * t, 0.5 * tails * w / w.sum(), COLOUR["disk"])


def _lensed_arc(rng, total, extra: Blobs) -> None:
    """A blue background source lensed into a tangential arc at the Einstein radius, plus a counter-image."""
    theta_e = rng.uniform(1.6, 3.0)
    centre = rng.uniform(0, 2 * np.pi)
    span = rng.uniform(1.0, 2.2)
    count = 18
    ang = centre + np.linspace(-span / 2, span / 2, count)
    arc_r = rng.uniform(0.06, 0.12) * total[1]
    colour = np.array([10 ** (-0.4 * rng.uniform(0.1, 0.5)), 1.0, 10 ** (0.4 * rng.uniform(0.1, 0.4))])
    w = np.exp(-0.5 * (np.linspace(-1, 1, count) / 0.6) ** 2)
    extra.add(theta_e * np.cos(ang), theta_e * np.sin(ang), 0.22, arc_r * w / w.sum(), colour)
    beta = rng.uniform(0.2, 0.5) * theta_e
    extra.add((theta_e - beta) * np.cos(centre + np.pi), (theta_e - beta) * np.sin(centre + np.pi), 0.2, 0.25 * arc_r, colour)


def _agn_point(p: dict, band: int) -> float:
    """Nuclear point-source flux (nmgy) from the AGN power law f_lambda ~ lambda^-1.5."""
    from embeddings.demo.population import C_A_S, DECAM_EFF_WAVE, NMGY_CGS

    lam = DECAM_EFF_WAVE[band]
    z = float(p["redshift"])
    flam = float(p["agn_l5100"]) * (lam / (1 + z) / 5100.0) ** -1.5 * 1e-17
    return flam * lam**2 / C_A_S / NMGY_CGS * 10 ** (-0.4 * float(p["ext_r"]))


def _dust_screen(rng, hlr: float, pa: float) -> np.ndarray:
    """Transmission [3, H, W] of a midplane dust lane (optical depth ~ 1/lambda) across an edge-on disk."""
    t = np.radians(pa)
    xx, yy = np.meshgrid(_COORD, _COORD)
    minor = -xx * np.sin(t) + yy * np.cos(t) - rng.uniform(-0.2, 0.2)
    major = xx * np.cos(t) + yy * np.sin(t)
    width = rng.uniform(0.3, 0.5)
    lane = np.exp(-0.5 * (minor / width) ** 2) * np.exp(-0.5 * (major / (2.5 * max(hlr, 1.5))) ** 2)
    tau_r = rng.uniform(2.5, 4.5)
    return np.stack([np.exp(-tau_r * k * lane) for k in (1.35, 1.0, 0.55)])


def _artefact(image: np.ndarray, rng, kind: str, psfs, sky: np.ndarray) -> None:
    """Imaging artefacts: satellite trail (one band), bright-star spikes (all bands), bad column (one band)."""
    xx, yy = np.meshgrid(_COORD, _COORD)
    if kind == "satellite_trail":
        band = int(rng.integers(0, 3))
        ang = rng.uniform(0, np.pi)
        d = (xx - rng.normal(0, 2)) * np.sin(ang) - (yy - rng.normal(0, 2)) * np.cos(ang)
        sigma = 0.8 * float(psfs[band].fwhm) / 2.355
        image[band] += rng.uniform(10, 40) * sky[band] * np.exp(-0.5 * (d / sigma) ** 2)
    elif kind == "star_spike":
        side = rng.uniform(-1, 1, 2)
        side[int(rng.integers(0, 2))] = rng.choice([-1, 1]) * rng.uniform(1.05, 1.4)
        sx, sy = side * STAMP * PIXEL_SCALE / 2
        star = rng.uniform(2e3, 2e4)
        colour = np.array([0.45, 1.0, 1.5])  # a K star
        rot = np.radians(rng.uniform(-3, 3))
        dx, dy = xx - sx, yy - sy
        u = dx * np.cos(rot) + dy * np.sin(rot)
        v = -dx * np.sin(rot) + dy * np.cos(rot)
        r = np.hypot(dx, dy) + 0.3
        for b in range(3):
            fwhm = float(psfs[b].fwhm)
            halo = star * colour[b] * 1e-4 / (1 + (r / (2.5 * fwhm)) ** 2) ** 1.5
            spike = star * colour[b] * 3e-4 / r * (np.exp(-0.5 * (u / 0.3) ** 2) + np.exp(-0.5 * (v / 0.3) ** 2))
            image[b] += halo + spike
    elif kind == "bad_column":
        band = int(rng.integers(0, 3))
        col = int(rng.integers(8, STAMP - 8))
        start = int(rng.integers(0, STAMP // 2)) if rng.random() < 0.5 else 0
        value = rng.uniform(30, 120) * sky[band]
        width = 1 if rng.random() < 0.7 else 2
        image[band, start:, col : col + width] += value
