"""Rendering of one synthetic smear image (private): stain model, morphology, distance fields.

:func:`render_cell` draws one centred cell of a class (or a blend of two classes) with its red
cells, stain, illumination and camera; :mod:`cytoviz.data.synth` draws the random streams, the
labels and the blends, and assembles the data sets. See :mod:`cytoviz.data.synth` for the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.ndimage import gaussian_filter

from cytoviz.data.domains import DomainShift, apply_camera, rotate_hue

if TYPE_CHECKING:  # pragma: no cover
    from cytoviz.data.synth import SynthConfig

__all__ = ["render_cell"]


# --------------------------------------------------------------------------------------------
# Stain model: target colours (RGB at unit density on the reference background), fitted by eye
# and by k-means to the PBC examples, turned into optical-density vectors.

_BACKGROUND = np.array([252.0, 226.0, 200.0]) / 255.0


def _od(rgb: tuple[float, float, float]) -> np.ndarray:
    return -np.log(np.asarray(rgb, dtype=float) / 255.0 / _BACKGROUND)


_OD = {
    "rbc": _od((210, 166, 170)),
    "nucleus": _od((78, 34, 128)),
    "neut_cyto": _od((222, 190, 200)),
    "neut_gran": _od((160, 105, 165)),
    "eos_cyto": _od((228, 190, 175)),
    "eos_gran": _od((220, 135, 130)),
    "baso_cyto": _od((200, 168, 198)),
    "baso_gran": _od((58, 22, 100)),
    "lymph_cyto": _od((168, 160, 214)),
    "mono_cyto": _od((196, 178, 208)),
    "blast_cyto": _od((166, 156, 208)),
    "ig_cyto": _od((186, 164, 206)),
    "ig_gran": _od((150, 86, 160)),
    "ery_blue": _od((168, 150, 192)),
    "ery_pink": _od((206, 164, 182)),
    "plt_cyto": _od((192, 160, 204)),
    "plt_gran": _od((112, 55, 150)),
    "smudge_cyto": _od((200, 166, 204)),
    "azur_gran": _od((120, 60, 150)),
}

# --------------------------------------------------------------------------------------------
# Morphology of each class. Ranges (low, high) are sampled uniformly. Radii of nuclei, lobes and
# bites are fractions of the cell radius; ``cell_r``, granule radii, chromatin scale and smear are
# fractions of the image width (a 360-px PBC image: a lymphocyte is ~0.1 in radius).

_Range = tuple[float, float]

_SPECS: dict[str, dict[str, Any]] = {
    "neutrophil": dict(
        cell_r=(0.14, 0.165), aspect=(0.92, 1.0), cell_wobble=(0.01, 0.03),
        nucleus=("lobed", 0.75, "band"), n_lobes=(3, 5), lobe_r=(0.24, 0.31), arc_r=(0.36, 0.55),
        band_t=(0.16, 0.22), span=(190.0, 290.0), nuc_wobble=(0.02, 0.05),
        nuc_dens=(1.0, 1.2), chrom_amp=(0.25, 0.4), chrom_scale=(0.005, 0.008),
        cyto="neut_cyto", cyto_dens=(0.8, 1.1), gran="neut_gran", gran_r=(0.0025, 0.0035),
        gran_fill=(0.5, 0.8), gran_strength=(0.35, 0.5),
    ),
    "eosinophil": dict(
        cell_r=(0.15, 0.175), aspect=(0.92, 1.0), cell_wobble=(0.01, 0.03),
        nucleus=("lobed", 1.0, "lobed"), n_lobes=(2, 3), lobe_r=(0.3, 0.37), arc_r=(0.38, 0.52),
        span=(100.0, 170.0), nuc_wobble=(0.02, 0.05),
        nuc_dens=(0.95, 1.15), chrom_amp=(0.25, 0.4), chrom_scale=(0.005, 0.008),
        cyto="eos_cyto", cyto_dens=(0.7, 1.0), gran="eos_gran", gran_r=(0.0055, 0.0075),
        gran_fill=(1.0, 1.4), gran_strength=(0.55, 0.8), over_nucleus=(0.1, 0.2),
    ),
    "basophil": dict(
        cell_r=(0.13, 0.155), aspect=(0.9, 1.0), cell_wobble=(0.02, 0.05),
        nucleus=("kidney", 1.0, "kidney"), nc=(0.55, 0.7), nuc_aspect=(0.8, 1.0),
        offset=(0.0, 0.15), bite_r=(0.3, 0.6), bite_d=(1.0, 1.4), nuc_wobble=(0.04, 0.08),
        nuc_dens=(0.75, 0.95), chrom_amp=(0.2, 0.3), chrom_scale=(0.005, 0.008),
        cyto="baso_cyto", cyto_dens=(0.8, 1.1), gran="baso_gran", gran_r=(0.0065, 0.009),
        gran_fill=(0.7, 1.1), gran_strength=(0.75, 1.0), over_nucleus=(0.6, 0.9),
    ),
    "lymphocyte": dict(
        cell_r=(0.1, 0.13), aspect=(0.88, 1.0), cell_wobble=(0.01, 0.04),
        nucleus=("round", 1.0, "round"), nc=(0.78, 0.9), nuc_aspect=(0.85, 1.0),
        offset=(0.0, 0.12), nuc_wobble=(0.02, 0.05),
        nuc_dens=(1.1, 1.3), chrom_amp=(0.3, 0.45), chrom_scale=(0.007, 0.01),
        cyto="lymph_cyto", cyto_dens=(0.8, 1.1), gran="azur_gran", gran_r=(0.003, 0.004),
        gran_fill=(0.0, 0.04), gran_strength=(0.6, 0.8),
    ),
    "monocyte": dict(
        cell_r=(0.17, 0.21), aspect=(0.82, 1.0), cell_wobble=(0.03, 0.07),
        nucleus=("kidney", 1.0, "kidney"), nc=(0.55, 0.68), nuc_aspect=(0.75, 0.95),
        offset=(0.05, 0.2), bite_r=(0.4, 0.7), bite_d=(0.9, 1.3), nuc_wobble=(0.05, 0.1),
        nuc_dens=(0.75, 0.9), chrom_amp=(0.15, 0.25), chrom_scale=(0.004, 0.006),
        cyto="mono_cyto", cyto_dens=(0.9, 1.2), gran="azur_gran", gran_r=(0.0025, 0.0035),
        gran_fill=(0.05, 0.2), gran_strength=(0.25, 0.4), vacuoles=(0.0, 6.0),
    ),
    "blast": dict(
        cell_r=(0.13, 0.17), aspect=(0.88, 1.0), cell_wobble=(0.01, 0.04),
        nucleus=("round", 1.0, "round"), nc=(0.75, 0.88), nuc_aspect=(0.85, 1.0),
        offset=(0.0, 0.1), nuc_wobble=(0.02, 0.05),
        nuc_dens=(0.72, 0.88), chrom_amp=(0.08, 0.15), chrom_scale=(0.003, 0.005),
        nucleoli=(1.0, 3.99), cyto="blast_cyto", cyto_dens=(1.0, 1.3),
    ),
    "immature granulocyte": dict(
        cell_r=(0.155, 0.19), aspect=(0.88, 1.0), cell_wobble=(0.01, 0.04),
        nucleus=("kidney", 1.0, "kidney"), nc=(0.55, 0.7), nuc_aspect=(0.8, 1.0),
        offset=(0.1, 0.25), bite_r=(0.2, 0.6), bite_d=(1.0, 1.45), nuc_wobble=(0.03, 0.06),
        nuc_dens=(0.85, 1.0), chrom_amp=(0.2, 0.3), chrom_scale=(0.005, 0.007),
        cyto="ig_cyto", cyto_dens=(0.9, 1.2), gran="ig_gran", gran_r=(0.0035, 0.005),
        gran_fill=(0.2, 0.5), gran_strength=(0.4, 0.6),
    ),
    "erythroblast": dict(
        cell_r=(0.085, 0.115), aspect=(0.9, 1.0), cell_wobble=(0.01, 0.03),
        nucleus=("round", 1.0, "round"), nc=(0.55, 0.7), nuc_aspect=(0.9, 1.0),
        offset=(0.0, 0.25), nuc_wobble=(0.01, 0.03),
        nuc_dens=(1.35, 1.6), chrom_amp=(0.1, 0.2), chrom_scale=(0.005, 0.008),
        cyto="ery", cyto_dens=(0.9, 1.1),
    ),
    "platelet": dict(
        cell_r=(0.04, 0.065), aspect=(0.7, 1.0), cell_wobble=(0.05, 0.12),
        nucleus=("none", 1.0, "none"), fragments=(0.0, 3.99),
        nuc_dens=(1.0, 1.0), chrom_amp=(0.2, 0.2), chrom_scale=(0.005, 0.005),
        cyto="plt_cyto", cyto_dens=(0.8, 1.2), gran="plt_gran", gran_r=(0.004, 0.0055),
        gran_fill=(0.9, 1.4), gran_strength=(0.7, 1.0), over_nucleus=(1.0, 1.0),
    ),
    "artefact": dict(
        cell_r=(0.1, 0.17), aspect=(0.6, 1.0), cell_wobble=(0.08, 0.2),
        nucleus=("smudge", 1.0, "smudge"), nc=(0.6, 0.95), nuc_aspect=(0.6, 1.0),
        offset=(0.0, 0.2), nuc_wobble=(0.1, 0.25),
        nuc_dens=(0.35, 0.6), chrom_amp=(0.3, 0.5), chrom_scale=(0.01, 0.02),
        cyto="smudge_cyto", cyto_dens=(0.3, 0.6), gran="azur_gran", gran_r=(0.005, 0.008),
        gran_fill=(0.0, 0.3), gran_strength=(0.6, 0.9), smear=(0.004, 0.015), spill=(1.0, 1.0),
        over_nucleus=(1.0, 1.0),
    ),
}

# Numeric parameters every class has (0 where a class does not use them).
_NUMERIC = (
    "cell_r", "aspect", "cell_wobble", "nuc_wobble", "nuc_dens", "chrom_amp", "chrom_scale",
    "cyto_dens", "gran_r", "gran_fill", "gran_strength", "over_nucleus", "vacuoles",
    "nucleoli", "fragments", "smear", "spill",
)


def _u(rng: np.random.Generator, r: _Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def _sample_class(cls: str, rng: np.random.Generator) -> dict[str, Any]:
    """Draw the morphology of one cell of ``cls``."""
    spec = _SPECS[cls]
    p: dict[str, Any] = {k: (_u(rng, spec[k]) if k in spec else 0.0) for k in _NUMERIC}
    if "gran_r" not in spec:
        p["gran_r"] = 0.004
    kind_a, prob_a, kind_b = spec["nucleus"]
    kind = kind_a if rng.random() < prob_a else kind_b
    nuc: dict[str, Any] = {"kind": kind}
    if kind in ("round", "kidney", "smudge"):
        nuc["nc"] = _u(rng, spec["nc"])
        nuc["aspect"] = _u(rng, spec["nuc_aspect"])
        nuc["offset"] = _u(rng, spec["offset"])
        nuc["offset_angle"] = float(rng.uniform(0, 2 * np.pi))
        nuc["angle"] = float(rng.uniform(0, np.pi))
        if kind == "kidney":
            nuc["bite_r"] = _u(rng, spec["bite_r"])
            nuc["bite_d"] = _u(rng, spec["bite_d"])
    elif kind == "lobed":
        nuc["n"] = int(rng.integers(spec["n_lobes"][0], spec["n_lobes"][1] + 1))
        nuc["lobe_r"] = _u(rng, spec["lobe_r"])
        nuc["arc_r"] = _u(rng, spec["arc_r"])
        nuc["span"] = np.deg2rad(_u(rng, spec["span"])) * (0.6 + 0.4 * min(nuc["n"], 4) / 4)
        nuc["start"] = float(rng.uniform(0, 2 * np.pi))
        nuc["jitter"] = rng.uniform(-0.15, 0.15, size=(nuc["n"], 3))
    elif kind == "band":
        nuc["t"] = _u(rng, spec["band_t"])
        nuc["arc_r"] = _u(rng, (0.42, 0.55))
        nuc["span"] = np.deg2rad(_u(rng, spec["span"]))
        nuc["start"] = float(rng.uniform(0, 2 * np.pi))
        nuc["jitter"] = rng.uniform(-0.2, 0.2, size=9)
    p["nucleus"] = nuc
    cyto = spec["cyto"]
    if cyto == "ery":
        t = rng.uniform()
        p["cyto_od"] = (1 - t) * _OD["ery_blue"] + t * _OD["ery_pink"]
    else:
        p["cyto_od"] = _OD[cyto]
    p["gran_od"] = _OD[spec.get("gran", "azur_gran")]
    p["nuc_od"] = _OD["nucleus"]
    return p


def _blend(a: dict[str, Any], b: dict[str, Any], w: float) -> dict[str, Any]:
    out = {k: (1 - w) * a[k] + w * b[k] for k in (*_NUMERIC, "cyto_od", "gran_od", "nuc_od")}
    out["nucleus"] = a["nucleus"]
    out["nucleus_b"] = b["nucleus"]
    out["cell_r_a"], out["cell_r_b"] = a["cell_r"], b["cell_r"]
    return out


# --------------------------------------------------------------------------------------------
# Distance fields (units of the image width, negative inside).


def _sd_ellipse(x: np.ndarray, y: np.ndarray, rx: float, ry: float) -> np.ndarray:
    return (np.sqrt((x / rx) ** 2 + (y / ry) ** 2) - 1.0) * np.sqrt(rx * ry)


def _sd_capsules(x: np.ndarray, y: np.ndarray, pts: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Distance to a chain of capsules through ``pts`` with linearly varying radii."""
    a, b = pts[:-1], pts[1:]
    ra, rb = radii[:-1], radii[1:]
    bax, bay = (b - a)[:, 0, None, None], (b - a)[:, 1, None, None]
    pax, pay = x[None] - a[:, 0, None, None], y[None] - a[:, 1, None, None]
    h = np.clip((pax * bax + pay * bay) / (bax**2 + bay**2 + 1e-12), 0.0, 1.0)
    d = np.hypot(pax - bax * h, pay - bay * h) - (ra[:, None, None] * (1 - h) + rb[:, None, None] * h)
    return d.min(axis=0)


def _sd_nucleus(nuc: dict[str, Any], x: np.ndarray, y: np.ndarray, cr: float) -> np.ndarray:
    kind = nuc["kind"]
    if kind == "none":
        return np.full(x.shape, 0.6 * cr)
    if kind in ("round", "kidney", "smudge"):
        r = nuc["nc"] * cr
        cx = nuc["offset"] * cr * np.cos(nuc["offset_angle"])
        cy = nuc["offset"] * cr * np.sin(nuc["offset_angle"])
        # the nucleus must stay inside the cell
        shift = max(0.0, np.hypot(cx, cy) + r - 0.95 * cr)
        if shift > 0:
            norm = np.hypot(cx, cy) + 1e-12
            cx, cy = cx - shift * cx / norm, cy - shift * cy / norm
        ca, sa = np.cos(nuc["angle"]), np.sin(nuc["angle"])
        xr, yr = ca * (x - cx) + sa * (y - cy), -sa * (x - cx) + ca * (y - cy)
        sd = _sd_ellipse(xr, yr, r, r * nuc["aspect"])
        if kind == "kidney":
            bx, by = nuc["bite_d"] * r, 0.0
            bite = nuc["bite_r"] * r - np.hypot(xr - bx, yr - by)
            sd = np.maximum(sd, bite)
        return sd
    if kind == "lobed":
        n, jit = nuc["n"], nuc["jitter"]
        ang = nuc["start"] + (np.linspace(0, 1, n) if n > 1 else np.zeros(1)) * nuc["span"]
        rad = nuc["arc_r"] * cr * (1 + jit[:, 0])
        pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
        pts -= pts.mean(axis=0) * 0.7  # centre the lobes in the cell
        lobe_r = nuc["lobe_r"] * cr * (1 + jit[:, 1])
        lobes = np.min(
            np.hypot(x[None] - pts[:, 0, None, None], y[None] - pts[:, 1, None, None])
            - lobe_r[:, None, None], axis=0,
        )
        if n == 1:
            return lobes
        strand = _sd_capsules(x, y, pts, np.full(n, 0.07 * cr))
        return np.minimum(lobes, strand)
    if kind == "band":
        ang = nuc["start"] + np.linspace(0, 1, 9) * nuc["span"]
        rad = nuc["arc_r"] * cr
        pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
        pts -= pts.mean(axis=0) * 0.6
        radii = nuc["t"] * cr * (1 + nuc["jitter"])
        return _sd_capsules(x, y, pts, radii)
    raise AssertionError(kind)  # pragma: no cover


# --------------------------------------------------------------------------------------------
# Rendering


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    n = gaussian_filter(rng.standard_normal(shape), max(sigma_px, 0.3), mode="wrap")
    return n / (n.std() + 1e-12)


def _soft(sd: np.ndarray, px_per_unit: float, width_px: float = 1.2) -> np.ndarray:
    return np.clip(0.5 - sd * (px_per_unit / width_px), 0.0, 1.0)


def _blob_peak(sigma: float) -> float:
    """Peak value of a unit impulse after ``gaussian_filter`` with ``sigma`` (2-D)."""
    from scipy.ndimage import gaussian_filter1d

    d = np.zeros(33)
    d[16] = 1.0
    return float(gaussian_filter1d(d, sigma)[16] ** 2)


def _granules(
    rng: np.random.Generator, allowed: np.ndarray, count: float, sigma_px: float
) -> np.ndarray:
    """Render ``count`` granules at random allowed pixels as Gaussian beads with peak ~1."""
    idx = np.flatnonzero(allowed.ravel())
    n = int(rng.poisson(max(count, 0.0)))
    if n == 0 or idx.size == 0:
        return np.zeros(allowed.shape)
    pick = rng.choice(idx, size=n, replace=True)
    imp = np.bincount(pick, minlength=allowed.size).astype(float).reshape(allowed.shape)
    sigma = max(sigma_px, 0.5)
    return np.clip(gaussian_filter(imp, sigma) / _blob_peak(sigma), 0.0, 1.3)


def _discs(
    x: np.ndarray, y: np.ndarray, centres: np.ndarray, radii: np.ndarray, ppu: float
) -> np.ndarray:
    if len(centres) == 0:
        return np.zeros(x.shape)
    d = np.hypot(x[None] - centres[:, 0, None, None], y[None] - centres[:, 1, None, None])
    return _soft((d - radii[:, None, None]).min(axis=0), ppu)


def _red_cells(
    rng: np.random.Generator, axis: np.ndarray, ppu: float
) -> tuple[np.ndarray, np.ndarray]:
    """Density field of erythrocytes (with central pallor) on a jittered hexagonal grid.

    ``axis`` holds the pixel-centre coordinates along x (and y). Returns the field and the
    erythrocyte centres.
    """
    half = float(axis[-1]) + 0.5 / ppu
    r_mean = rng.uniform(0.085, 0.1)
    spacing = 2 * r_mean * rng.uniform(1.0, 1.2)
    keep_p = rng.uniform(0.6, 0.92)
    rows = np.arange(-half - spacing, half + spacing, spacing * 0.866)
    cols = np.arange(-half - spacing, half + 2 * spacing, spacing)
    gx, gy = np.meshgrid(cols, rows)
    gx = gx + (np.arange(len(rows))[:, None] % 2) * spacing / 2
    centres = np.stack([gx.ravel(), gy.ravel()], axis=1)
    centres += rng.uniform(-0.25, 0.25, centres.shape) * spacing
    centres = centres[rng.random(len(centres)) < keep_p]
    n = len(centres)
    radii = r_mean * rng.uniform(0.88, 1.08, n)
    aspects = rng.uniform(0.88, 1.0, n)
    angles = rng.uniform(0, np.pi, n)
    field = np.zeros((axis.size, axis.size))
    for (cx, cy), r, asp, ang in zip(centres, radii, aspects, angles, strict=True):
        # work in the cell's bounding box only
        j0, j1 = np.searchsorted(axis, [cx - 1.1 * r, cx + 1.1 * r])
        i0, i1 = np.searchsorted(axis, [cy - 1.1 * r, cy + 1.1 * r])
        if j1 <= j0 or i1 <= i0:
            continue
        x = axis[None, j0:j1] - cx
        y = axis[i0:i1, None] - cy
        ca, sa = np.cos(ang), np.sin(ang)
        xr, yr = ca * x + sa * y, -sa * x + ca * y
        rho = np.sqrt((xr / r) ** 2 + (yr / (r * asp)) ** 2)
        body = _soft((rho - 1.0) * r, ppu, 1.5)
        pallor = 0.35 + 0.65 * np.clip((rho - 0.15) / 0.7, 0.0, 1.0) ** 1.5
        field[i0:i1, j0:j1] += body * pallor
    return field, centres


def _stain(v: np.ndarray, hue: float, saturation: float, intensity: float) -> np.ndarray:
    v = rotate_hue(v, hue)
    g = v.mean()
    return np.clip((g + saturation * (v - g)) * intensity, 0.0, None)


def render_cell(
    cls: str,
    partner: str | None,
    weight: float,
    rng: np.random.Generator,
    cam_rng: np.random.Generator,
    config: SynthConfig,
    shift: DomainShift,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Render one image; returns (uint8 image, (3, S, S) bool masks, metadata)."""
    size, ss = int(config.image_size), int(config.supersample)
    res = size * ss
    ppu = res * shift.scale  # render pixels per unit of (reference) image width
    axis = ((np.arange(res) + 0.5) / res - 0.5) / shift.scale
    X, Y = np.meshgrid(axis, axis)

    ox, oy = rng.uniform(-config.max_offset, config.max_offset, 2)
    theta = rng.uniform(0, 2 * np.pi)
    ct, st = np.cos(theta), np.sin(theta)
    xl, yl = ct * (X - ox) + st * (Y - oy), -st * (X - ox) + ct * (Y - oy)

    pa = _sample_class(cls, rng)
    pb = _sample_class(partner, rng) if partner is not None else None
    p = _blend(pa, pb, weight) if pb is not None else pa
    cr = p["cell_r"]

    # outline and nucleus
    sd_cell = _sd_ellipse(xl, yl, cr, cr * p["aspect"])
    sd_cell = sd_cell + p["cell_wobble"] * cr * _noise(rng, (res, res), 0.03 * ppu)
    for _ in range(int(p["fragments"])):
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(1.1, 2.0) * cr
        sd_cell = np.minimum(
            sd_cell,
            np.hypot(xl - dist * np.cos(ang), yl - dist * np.sin(ang)) - rng.uniform(0.4, 0.7) * cr,
        )
    sd_nuc = _sd_nucleus(pa["nucleus"], xl, yl, pa["cell_r"])
    if pb is not None:
        sd_nuc = (1 - weight) * sd_nuc + weight * _sd_nucleus(pb["nucleus"], xl, yl, pb["cell_r"])
    sd_nuc = sd_nuc + p["nuc_wobble"] * cr * _noise(rng, (res, res), 0.02 * ppu)
    a_nuc = _soft(sd_nuc, ppu)
    a_cell = np.maximum(_soft(sd_cell, ppu), a_nuc)
    if p["smear"] * ppu > 0.3:
        sig = p["smear"] * ppu * np.array([rng.uniform(0.3, 1.0), rng.uniform(1.0, 2.5)])
        sig = tuple(rng.permutation(sig))
        a_nuc = gaussian_filter(a_nuc, sig)
        a_cell = np.maximum(gaussian_filter(a_cell, sig), a_nuc)

    # chromatin, nucleoli
    tex = _noise(rng, (res, res), p["chrom_scale"] * ppu)
    nuc_field = p["nuc_dens"] * np.clip(1.0 + p["chrom_amp"] * tex, 0.3, 2.0)
    n_nucleoli = int(p["nucleoli"])
    if n_nucleoli:
        inner = np.flatnonzero((sd_nuc < -0.25 * p["nucleus"].get("nc", 0.5) * cr).ravel())
        if inner.size:
            pick = rng.choice(inner, size=n_nucleoli)
            centres = np.stack([X.ravel()[pick], Y.ravel()[pick]], axis=1)
            radii = rng.uniform(0.011, 0.018, n_nucleoli)
            nuc_field = nuc_field * (1.0 - 0.45 * _discs(X, Y, centres, radii, ppu))

    # cytoplasm texture, vacuoles
    cyto_field = p["cyto_dens"] * (1.0 + 0.12 * _noise(rng, (res, res), 0.01 * ppu))
    n_vac = int(p["vacuoles"])
    if n_vac:
        room = np.flatnonzero(((sd_cell < -0.012) & (sd_nuc > 0.008)).ravel())
        if room.size:
            pick = rng.choice(room, size=n_vac)
            centres = np.stack([X.ravel()[pick], Y.ravel()[pick]], axis=1)
            a_vac = _discs(X, Y, centres, rng.uniform(0.006, 0.013, n_vac), ppu)
            cyto_field = cyto_field * (1.0 - 0.85 * a_vac)

    # granules
    a_gran = np.zeros((res, res))
    if p["gran_fill"] > 0:
        area = np.pi * cr * cr * p["aspect"]
        count = p["gran_fill"] * area / (np.pi * p["gran_r"] ** 2)
        allowed = a_cell > 0.5
        if p["spill"] > 0.5:
            allowed = np.hypot(xl, yl) < 1.8 * cr
        a_gran = _granules(rng, allowed, count, p["gran_r"] * ppu / 1.18)
        a_gran = a_gran * (1.0 - a_nuc * (1.0 - p["over_nucleus"]))
        if p["spill"] <= 0.5:
            a_gran = a_gran * a_cell

    # background: red cells and stray platelets
    rbc, _ = _red_cells(rng, axis, ppu)
    rbc = rbc * (1.0 - a_cell)
    stray = np.zeros((res, res))
    if rng.random() < config.stray_platelet_prob:
        n = int(rng.integers(1, 3))
        ang = rng.uniform(0, 2 * np.pi, n)
        dist = rng.uniform(1.4 * cr + 0.03, 0.45, n)
        centres = np.stack([dist * np.cos(ang), dist * np.sin(ang)], axis=1)
        stray = 0.8 * _discs(X, Y, centres, rng.uniform(0.008, 0.016, n), ppu) * (1.0 - a_cell)

    # stain and illumination
    hue = rng.normal(0.0, config.hue_jitter_deg) + shift.hue_shift_deg
    intensity = float(np.clip(rng.normal(1.0, config.stain_jitter), 0.7, 1.4)) * shift.stain_intensity
    eosin = float(np.clip(rng.normal(1.0, config.stain_jitter), 0.7, 1.4))
    sat = shift.stain_saturation

    def stain(v: np.ndarray, extra: float = 1.0) -> np.ndarray:
        return _stain(v, hue, sat, intensity * extra)

    od = (
        rbc[..., None] * stain(_OD["rbc"], eosin)
        + stray[..., None] * stain(_OD["plt_gran"])
        + (a_cell * (1.0 - a_nuc) * cyto_field)[..., None] * stain(p["cyto_od"])
        + (a_nuc * nuc_field)[..., None] * stain(p["nuc_od"])
        + (a_gran * p["gran_strength"])[..., None] * stain(p["gran_od"])
    )
    illum = _BACKGROUND * (1.0 + rng.normal(0.0, config.illumination_jitter, 3))
    illum = np.clip(illum * np.asarray(shift.illumination), 0.0, 1.0)
    grad_angle, grad = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.06)
    shade = 1.0 + grad * (np.cos(grad_angle) * X + np.sin(grad_angle) * Y)
    img = illum * shade[..., None] * np.exp(-od)

    img = img.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
    if config.noise_std > 0:
        img = img + cam_rng.normal(0.0, config.noise_std, img.shape)
    image = apply_camera(img, shift, cam_rng)

    def down(m: np.ndarray, thr: float) -> np.ndarray:
        return m.reshape(size, ss, size, ss).mean(axis=(1, 3)) > thr

    nucleus = down(a_nuc > 0.5, 0.5)
    cell = down(a_cell > 0.5, 0.5) | nucleus
    granules = down(a_gran > 0.5, 0.2)
    masks = np.stack([nucleus, cell & ~nucleus, granules])
    info = {
        "nucleus_kind": pa["nucleus"]["kind"],
        "cell_radius": float(cr * shift.scale),
        "rotation_deg": float(np.rad2deg(theta)),
        "offset_x": float(ox * shift.scale),
        "offset_y": float(oy * shift.scale),
    }
    return image, masks, info
