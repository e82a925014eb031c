"""Synthetic HARPS-like spectra with known labels: the embedded default data set.

Physically motivated, not realistic to the last percent: a Planck continuum at Teff
times a smooth instrument response, absorbed by a line list (the strong lines every
astronomer knows plus a fixed random forest of weak metal lines, air wavelengths)
through ``exp(-τ)``, so strong lines saturate and grow damping wings. Line opacity
follows Saha–Boltzmann in spirit:

* neutral metal lines weaken as Teff rises (ionisation, excitation ``10^{-θχ}``),
  ionised lines strengthen relative to neutral ones at low logg (``∝ g^{-1/3}``);
* Balmer lines (χ = 10.2 eV) strengthen steeply with Teff;
* everything scales with ``10^[M/H]`` and pressure (Lorentz) wings with ``g^{1/3}``.

Widths combine thermal + micro-turbulent, rotational (vsini, as an equivalent
Gaussian), instrumental (R = 115,000) and pixel (step/√12) broadening. The spectrum
is Doppler shifted by ``λ = λ0 (1 + v/c)``, gets photon noise at a drawn SNR, is
divided by its median and has masked pixels (padding, CCD gap) set to NaN, exactly
as the store holds real spectra. Everything is a function of the seed only.

Competing shifts (off by default; each adds its label): a wavelength-calibration drift, a zero-point
offset and a dispersion stretch drawn per spectrum independently of RV, which move every line the
instrument records (stellar and telluric), and telluric lines fixed in the observed frame, deepening
with airmass. A recorded wavelength is ``λ' = λ + offset + stretch·(λ − λ_mid)``, ``λ_mid`` the grid's
middle; the star's lines sit at ``λ = λ0 (1 + v/c)`` before it, the tellurics at their rest wavelength.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import typing
from dataclasses import asdict, dataclass, fields
from typing import Literal

import numpy as np

from spectra_lightning.common.progress import progress as progress_of
from spectra_lightning.physics.grid import C_KMS, GRIDS, SpectralGrid
from spectra_lightning.physics.labels import LABELS, SHIFT_LABELS

THETA_SUN = 5040.0 / 5777.0
LOGG_SUN = 4.44
RESOLUTION = 115_000
LINELIST_SEED = 20210208  # fixed: every synthetic store shares one line list

# (air wavelength Å, species kind, excitation χ eV, base log-strength, Lorentz width Å)
STRONG_LINES = [
    (6562.80, "H", 10.2, 0.0, 0.480),
    (4861.32, "H", 10.2, -0.2, 0.400),
    (4340.46, "H", 10.2, -0.4, 0.360),
    (4101.73, "H", 10.2, -0.6, 0.320),
    (3970.07, "H", 10.2, -0.8, 0.280),
    (3889.05, "H", 10.2, -1.0, 0.240),
    (3933.66, "ion", 0.0, 2.2, 0.600),
    (3968.47, "ion", 0.0, 2.0, 0.600),  # Ca II K, H
    (5889.95, "neutral", 0.0, 1.4, 0.100),
    (5895.92, "neutral", 0.0, 1.1, 0.100),  # Na D2, D1
    (5167.32, "neutral", 2.7, 0.9, 0.080),
    (5172.68, "neutral", 2.7, 1.2, 0.088),  # Mg b
    (5183.60, "neutral", 2.7, 1.4, 0.100),
    (4226.73, "neutral", 0.0, 1.4, 0.120),
    (6162.17, "neutral", 1.9, 0.3, 0.048),  # Ca I
    (6122.22, "neutral", 1.9, 0.2, 0.040),
    (6102.72, "neutral", 1.9, 0.0, 0.032),
    (4383.55, "neutral", 1.5, 0.4, 0.032),
    (4045.81, "neutral", 1.5, 0.4, 0.032),  # Fe I
    (5269.54, "neutral", 0.9, 0.3, 0.028),
    (5328.04, "neutral", 0.9, 0.2, 0.024),
    (5371.49, "neutral", 1.0, 0.1, 0.020),
    (5397.13, "neutral", 0.9, 0.0, 0.020),
    (5405.77, "neutral", 1.0, 0.0, 0.020),
    (5429.70, "neutral", 1.0, 0.0, 0.020),
    (5446.92, "neutral", 1.0, 0.0, 0.020),
    (5586.76, "neutral", 3.4, -0.2, 0.016),
    (5615.64, "neutral", 3.3, -0.2, 0.016),
    (6252.56, "neutral", 2.4, -0.3, 0.016),
    (6494.98, "neutral", 2.4, -0.2, 0.016),
    (5232.94, "neutral", 2.9, -0.1, 0.020),
    (4923.92, "ion", 2.9, 0.2, 0.016),
    (5018.44, "ion", 2.9, 0.2, 0.016),  # Fe II
    (5169.03, "ion", 2.9, 0.1, 0.016),
    (5316.62, "ion", 3.2, -0.1, 0.012),
    (6456.38, "ion", 3.9, -0.5, 0.008),
    (6516.08, "ion", 2.9, -0.6, 0.008),
    (5234.62, "ion", 3.2, -0.4, 0.008),
    (5197.58, "ion", 3.2, -0.4, 0.008),
    (4981.73, "neutral", 0.8, -0.2, 0.012),
    (4991.07, "neutral", 0.8, -0.3, 0.012),  # Ti I
    (4999.50, "neutral", 0.8, -0.3, 0.012),
    (5210.38, "neutral", 0.0, -0.2, 0.012),
    (4501.27, "ion", 1.1, -0.1, 0.012),
    (4468.49, "ion", 1.1, -0.1, 0.012),  # Ti II
    (5206.04, "neutral", 0.9, 0.0, 0.016),
    (5208.42, "neutral", 0.9, 0.1, 0.016),  # Cr I
    (5476.90, "neutral", 1.8, -0.1, 0.016),
    (4030.75, "neutral", 0.0, 0.3, 0.020),  # Ni I, Mn I
    (5708.40, "neutral", 4.9, -0.7, 0.012),
    (4554.03, "ion", 0.0, 0.2, 0.016),  # Si I, Ba II
    (6141.71, "ion", 0.7, -0.2, 0.012),
    (4077.71, "ion", 0.0, 0.3, 0.020),  # Ba II, Sr II
    (3944.01, "neutral", 0.0, 0.2, 0.020),
    (3961.52, "neutral", 0.0, 0.3, 0.020),  # Al I
]
WEAK_LINES_PER_ANGSTROM = 0.9


@dataclass(frozen=True)
class SynthSpec:
    """Everything that determines a synthetic store (its hash names the cache file).

    Args:
        n: number of spectra.
        seed: the only source of randomness.
        grid: a named grid (see ``grid.GRIDS``).
        rv_dist: ``uniform`` on ±rv_max, or ``archive`` (a mixture of a core of
            σ = 20 km/s and a halo of σ = 50 km/s, truncated at ±rv_max).
        rv_max: km/s.
        snr_min, snr_max: SNR at the median flux, log-uniform.
        giant_fraction: share of red giants among the stars (rest: FGKM dwarfs).
        spectra_per_star: epochs per star (same star, new RV jitter, SNR and noise).
        resolution: spectral resolving power R = λ/Δλ of the instrument profile (HARPS: 115,000).
        dtype: stored flux dtype.
        wave_offset: Å; a calibration zero-point offset ~ U(±wave_offset) per spectrum (label ``wave_offset``).
        wave_stretch: a dispersion stretch ~ U(±wave_stretch) per spectrum, dimensionless, about the grid's
            middle (label ``wave_stretch``).
        tellurics: peak optical depth of the strongest telluric line at airmass 1 (0: none); airmass ~ U(1, 2)
            per spectrum (label ``airmass``). Lines of O2 and H2O bands, fixed in the observed frame.
    """

    n: int = 5000
    seed: int = 0
    grid: str = "quickstart"
    rv_dist: Literal["uniform", "archive"] = "uniform"
    rv_max: float = 30.0
    snr_min: float = 30.0
    snr_max: float = 300.0
    giant_fraction: float = 0.3
    spectra_per_star: int = 1
    resolution: float = RESOLUTION
    dtype: Literal["float16", "float32"] = "float16"
    wave_offset: float = 0.0
    wave_stretch: float = 0.0
    tellurics: float = 0.0

    def __post_init__(self):
        for name in ("rv_dist", "dtype"):
            allowed = typing.get_args(typing.get_type_hints(SynthSpec)[name])
            if getattr(self, name) not in allowed:
                raise ValueError(f"synth {name} {getattr(self, name)!r}: choose one of {', '.join(allowed)}")
        if self.n < 1 or self.spectra_per_star < 1:
            raise ValueError(f"synth n ({self.n}) and spectra_per_star ({self.spectra_per_star}) must be >= 1")
        if not 0 < self.snr_min <= self.snr_max:
            raise ValueError(f"synth snr range {self.snr_min}..{self.snr_max}: need 0 < snr_min <= snr_max")
        for name in ("wave_offset", "wave_stretch", "tellurics"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"synth {name} {getattr(self, name)!r}: must be >= 0 (0 turns it off)")

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels its store carries."""
        on = (self.wave_offset > 0, self.wave_stretch > 0, self.tellurics > 0)
        return LABELS + tuple(name for name, flag in zip(SHIFT_LABELS, on) if flag)

    def digest(self) -> str:
        # options at their "off" default are left out, so that stores cached before they existed keep their name
        d = {k: v for k, v in asdict(self).items() if not (k in _LATER_OPTIONS and v == 0.0)}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


_LATER_OPTIONS = ("wave_offset", "wave_stretch", "tellurics")


def draw_labels(spec: SynthSpec) -> dict[str, np.ndarray]:
    """Labels ``{name: (N,)}`` from realistic joint distributions (dwarfs and giants)."""
    rng = np.random.default_rng([spec.seed, 0])
    n_star = -(-spec.n // spec.spectra_per_star)
    giant = rng.random(n_star) < spec.giant_fraction
    teff = np.where(giant, rng.uniform(4000, 5300, n_star), 3800 + 3000 * rng.beta(2.2, 1.8, n_star))
    # main sequence logg falls with Teff; the red-giant branch rises with it
    logg = np.where(
        giant,
        1.4 + 0.0014 * (teff - 4000) + rng.normal(0, 0.25, n_star),
        4.75 - 0.00018 * (teff - 3800) + rng.normal(0, 0.08, n_star),
    )
    feh = np.clip(rng.normal(-0.1, 0.25, n_star), -1.5, 0.5)
    vsini = np.where(
        giant, rng.gamma(2.0, 1.5, n_star), rng.gamma(1.5, 1.5 + 8.0 * np.clip((teff - 6000) / 800, 0, None), n_star)
    )
    vsini = np.clip(vsini, 0.5, 60.0)
    if spec.rv_dist == "uniform":
        rv_star = rng.uniform(-spec.rv_max, spec.rv_max, n_star)
    else:
        rv_star = np.where(rng.random(n_star) < 0.8, rng.normal(0, 20, n_star), rng.normal(0, 50, n_star))
        rv_star = np.clip(rv_star, -spec.rv_max, spec.rv_max)
    star = np.arange(spec.n) // spec.spectra_per_star
    jitter = rng.normal(0, 0.05, spec.n) if spec.spectra_per_star > 1 else 0.0
    snr = np.exp(rng.uniform(np.log(spec.snr_min), np.log(spec.snr_max), spec.n))
    out = {
        "rv": np.clip(rv_star[star] + jitter, -spec.rv_max, spec.rv_max),
        "teff": teff[star],
        "logg": logg[star],
        "feh": feh[star],
        "vsini": vsini[star],
        "snr": snr,
        "star": star,
    }
    # per spectrum (an epoch's calibration and sky), from their own stream: the labels above stay as they were
    shifts = np.random.default_rng([spec.seed, 2])
    out["wave_offset"] = shifts.uniform(-1, 1, spec.n) * spec.wave_offset
    out["wave_stretch"] = shifts.uniform(-1, 1, spec.n) * spec.wave_stretch
    out["airmass"] = shifts.uniform(1, 2, spec.n) if spec.tellurics > 0 else np.ones(spec.n)
    return out


def line_list(grid: SpectralGrid) -> dict[str, np.ndarray]:
    """The fixed line list: strong lines plus seeded weak metal lines inside ``grid``."""
    rng = np.random.default_rng(LINELIST_SEED)
    lo, hi = 3700.0, 7000.0
    n_weak = int(WEAK_LINES_PER_ANGSTROM * (hi - lo))
    weak_wave = rng.uniform(lo, hi, n_weak)
    weak_ion = rng.random(n_weak) < 0.15
    weak = {
        "wave": weak_wave,
        "kind": np.where(weak_ion, "ion", "neutral"),
        "chi": rng.uniform(0.0, 5.0, n_weak),
        "strength": rng.normal(-1.3, 0.5, n_weak),
        "gamma": rng.uniform(0.005, 0.02, n_weak),
    }
    strong = dict(zip(("wave", "kind", "chi", "strength", "gamma"), map(np.array, zip(*STRONG_LINES))))
    lines = {k: np.concatenate([np.asarray(strong[k]), weak[k]]) for k in weak}
    lines["wave"] = lines["wave"].astype(float)
    for k in ("chi", "strength", "gamma"):
        lines[k] = lines[k].astype(float)
    margin = 35.0  # Å: strong-line wings and ±300 km/s shifts reach into the grid
    keep = (lines["wave"] > grid.wave_min - margin) & (lines["wave"] < grid.wave_max + margin)
    return {k: v[keep] for k, v in lines.items()}


# telluric bands in the optical (Å, air): O2 γ and B, H2O near 5900, 6500 and 7200; a seeded forest in each
TELLURIC_BANDS = [
    (6276.0, 6310.0, 20, "O2"),
    (6867.0, 6930.0, 30, "O2"),
    (5880.0, 5990.0, 40, "H2O"),
    (6470.0, 6580.0, 40, "H2O"),
    (7160.0, 7340.0, 60, "H2O"),
]
TELLURIC_SEED = 20211215


def telluric_lines() -> dict[str, np.ndarray]:
    """The fixed telluric line list: rest wavelengths (Å) and peak optical depths relative to the strongest."""
    rng = np.random.default_rng(TELLURIC_SEED)
    wave = np.concatenate([rng.uniform(lo, hi, n) for lo, hi, n, _ in TELLURIC_BANDS])
    depth = rng.lognormal(-1.5, 0.8, len(wave))
    return {"wave": wave, "depth": depth / depth.max()}


def recorded(wave0: np.ndarray, offset: np.ndarray, stretch: np.ndarray, mid: float) -> np.ndarray:
    """Where the instrument records true wavelengths ``wave0`` (…, M) given per-spectrum ``offset, stretch (N,)``."""
    return wave0 + offset[:, None] + stretch[:, None] * (wave0 - mid)


def log_opacity(lines: dict, teff, logg, feh) -> np.ndarray:
    """``(N, n_lines)`` log10 peak opacity of each line in each star."""
    dtheta = (5040.0 / teff - THETA_SUN)[:, None]
    dlogg = (logg - LOGG_SUN)[:, None]
    kind, chi = lines["kind"], lines["chi"]
    out = lines["strength"] + feh[:, None]
    neutral = kind == "neutral"
    ion = kind == "ion"
    hydrogen = kind == "H"
    # neutrals of mostly-ionised metals: Saha (ionisation ~7.5 eV) + Boltzmann, damped
    out = out + np.where(neutral, 0.45 * dtheta * (7.5 - chi), 0.0)
    # ions: Boltzmann only, and ∝ Pe^-1 ~ g^-1/3 against the H- continuum
    out = out + np.where(ion, -0.45 * dtheta * chi - dlogg / 3.0, 0.0)
    out = out + np.where(hydrogen, -0.45 * dtheta * chi - feh[:, None], 0.0)  # no [M/H] scaling
    return out


def gaussian_sigma_kms(teff, vsini, mass, resolution: float | None = RESOLUTION):
    """Doppler width (km/s): thermal + 1 km/s micro-turbulence + vsini + instrument (None: none)."""
    thermal2 = 2 * 1.380649e-23 * teff[:, None] / (mass * 1.6605e-27) / 1e6
    inst = C_KMS / (2.3548 * resolution) if resolution else 0.0
    return np.sqrt(0.5 * thermal2 + 1.0 + (0.6 * vsini[:, None]) ** 2 + inst**2)


def pixel_window(grid: SpectralGrid, lo: float, hi: float) -> tuple[int, int]:
    """The grid's pixels ``[i0, i1)`` a line drawn between ``lo`` and ``hi`` Å touches (clipped to the grid)."""
    span = np.asarray(grid.index_of(np.array([lo, hi]))).astype(int) + [0, 2]
    i0, i1 = np.clip(span, 0, grid.length)
    return int(i0), int(i1)


def telluric_depth(grid: SpectralGrid, scale: np.ndarray, offset, stretch, mid: float, resolution: float):
    """``(N, L)`` optical depth of the telluric lines, ``scale (N,)`` the strongest's, recorded as the instrument
    records them (unresolved: the instrument's and the pixel's width)."""
    t = telluric_lines()
    keep = (t["wave"] > grid.wave_min - 5) & (t["wave"] < grid.wave_max + 5)
    wave0, depth = t["wave"][keep], t["depth"][keep]
    centres = recorded(np.broadcast_to(wave0, (len(scale), len(wave0))), offset, stretch, mid)
    sig = np.sqrt((wave0 / (2.3548 * resolution)) ** 2 + grid.pixel_width(wave0) ** 2 / 12.0)
    wave = grid.wavelength
    tau = np.zeros((len(scale), grid.length))
    for m in range(len(wave0)):
        i0, i1 = pixel_window(grid, centres[:, m].min() - 6 * sig[m], centres[:, m].max() + 6 * sig[m])
        x = wave[None, i0:i1] - centres[:, m, None]
        tau[:, i0:i1] += (scale * depth[m])[:, None] * np.exp(-0.5 * (x / sig[m]) ** 2)
    return tau


def render(
    grid: SpectralGrid,
    labels: dict[str, np.ndarray],
    rng: np.random.Generator | None,
    resolution: float = RESOLUTION,
    tellurics: float = 0.0,
) -> np.ndarray:
    """Spectra ``(N, L)`` float64 on ``grid`` for the given labels; NaN where masked.

    ``rng=None`` gives noise-free spectra (tests). Flux is divided by its median over
    valid pixels, as ingest does for real spectra. Optional labels ``wave_offset``, ``wave_stretch`` (a
    calibration drift) and, with ``tellurics`` > 0, ``airmass`` (module docstring).
    """
    teff, logg, feh = labels["teff"], labels["logg"], labels["feh"]
    rv, vsini = labels["rv"], labels["vsini"]
    n = len(teff)
    wave = grid.wavelength
    lines = line_list(grid)
    log_a = log_opacity(lines, teff, logg, feh)  # (N, M)
    mass = np.where(lines["kind"] == "H", 1.0, 50.0)
    sig_kms = gaussian_sigma_kms(teff, vsini, mass[None, :], resolution)  # (N, M)
    sig0 = lines["wave"] * gaussian_sigma_kms(teff, 0 * vsini, mass[None, :], None) / C_KMS
    sig = np.sqrt((lines["wave"] * sig_kms / C_KMS) ** 2 + grid.pixel_width(lines["wave"]) ** 2 / 12.0)
    # broadening by rotation, instrument and pixel conserves the line's Gaussian area
    log_a = log_a + np.log10(sig0 / sig)
    gamma = lines["gamma"][None, :] * 10 ** ((logg[:, None] - LOGG_SUN) / 3.0)
    tau = np.zeros((n, grid.length))
    offset = labels.get("wave_offset", np.zeros(n))
    stretch = labels.get("wave_stretch", np.zeros(n))
    mid = 0.5 * (grid.wave_min + grid.wave_max)
    shifted = lines["wave"][None, :] * (1.0 + rv / C_KMS)[:, None]
    centres = recorded(shifted, offset, stretch, mid)  # (N, M)
    drift = np.abs(centres - shifted).max(0) if len(rv) else 0 * lines["wave"]  # (M,): 0 without a drift
    for m in range(len(lines["wave"])):
        a = 10 ** log_a[:, m]
        s, g = sig[:, m], gamma[:, m]
        eta = (g / (g + s))[:, None]  # Lorentz share of the pseudo-Voigt
        half = max(6 * s.max(), min(g.max() * np.sqrt(a.max() / 1e-3), 30.0)) + abs(rv).max() * lines["wave"][m] / C_KMS
        half += drift[m]
        i0, i1 = pixel_window(grid, lines["wave"][m] - half, lines["wave"][m] + half)
        if i1 <= i0:
            continue
        x = wave[None, i0:i1] - centres[:, m, None]
        prof = eta * g[:, None] ** 2 / (x**2 + g[:, None] ** 2) + (1 - eta) * np.exp(-0.5 * (x / s[:, None]) ** 2)
        tau[:, i0:i1] += a[:, None] * prof
    if tellurics:
        tau += telluric_depth(grid, labels["airmass"] * tellurics, offset, stretch, mid, resolution)
    continuum = planck(wave[None, :], teff[:, None]) * instrument_response(wave)[None, :]
    flux = continuum * np.exp(-tau)
    valid = grid.valid
    if rng is not None:
        med = np.median(flux[:, valid], axis=1, keepdims=True)
        flux = flux + rng.standard_normal(flux.shape) * np.sqrt(flux * med) / labels["snr"][:, None]
    flux /= np.median(flux[:, valid], axis=1, keepdims=True)
    flux[:, ~valid] = np.nan
    return flux


def planck(wave_aa, teff):
    """Planck B_λ up to a constant (wavelength in Å)."""
    x = 1.4387769e8 / (wave_aa * teff)  # hc/λkT with λ in Å
    return wave_aa**-5.0 / np.expm1(x)


def instrument_response(wave_aa):
    """A smooth throughput peaking near 5800 Å, falling to the blue (fixed)."""
    return np.exp(-0.5 * ((wave_aa - 5800.0) / 1400.0) ** 2)


LABEL_BYTES = 200  # memory per spectrum while drawing the labels (10 float64 columns and their temporaries)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None where unknown."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits_in_memory(spec: SynthSpec) -> None:
    """Refuse, before anything is drawn, a set whose labels would not fit in the memory available."""
    need, have = spec.n * LABEL_BYTES, available_memory()
    if have is not None and need > 0.8 * have:
        raise ValueError(
            f"--n {spec.n:,}: drawing its labels needs about {need / 1e9:,.1f} GB of memory and "
            f"{have / 1e9:.1f} GB is available: write fewer spectra (or several stores with other seeds)"
        )


def synthesize(path: str, spec: SynthSpec, block: int = 256, progress: bool = True):
    """Write ``spec`` as a store at ``path`` (atomically: built aside, then renamed; an interrupted run leaves
    nothing at ``path``)."""
    from spectra_lightning.store import SpectraStore

    if spec.n < 1:
        raise ValueError(f"--n must be at least 1, got {spec.n}")
    check_fits_in_memory(spec)
    grid = SpectralGrid.parse(spec.grid)
    labels = draw_labels(spec)
    meta = {k: labels[k] for k in spec.labels}
    meta["low_flux"] = np.zeros(spec.n, np.int64)  # as ingest flags real spectra; never low here
    with SpectraStore.create_atomic(
        path, grid, dtype=spec.dtype, attrs={"producer": "synth", "synth": asdict(spec)}
    ) as store:
        for b, start in enumerate(progress_of(range(0, spec.n, block), desc="synth", unit="block", enabled=progress)):
            sl = slice(start, min(start + block, spec.n))
            rng = np.random.default_rng([spec.seed, 1, b])
            flux = render(grid, {k: v[sl] for k, v in labels.items()}, rng, spec.resolution, spec.tellurics)
            names = {  # made per block: as strings they would outweigh the labels
                "id": np.array([f"synth-{spec.seed}-{i:07d}" for i in range(sl.start, sl.stop)]),
                "object": np.array([f"SYN{spec.seed}-{s:07d}" for s in labels["star"][sl]]),
            }
            store.append(flux, {**{k: v[sl] for k, v in meta.items()}, **names})
    return path


SYNTH_HELP = {
    "n": "spectra to write",
    "seed": "the only source of randomness",
    "rv_dist": "radial velocities: uniform on ±rv-max, or archive (a 20 km/s core and a 50 km/s halo, cut at ±rv-max)",
    "rv_max": "largest |RV|, km/s",
    "snr_min": "lowest signal-to-noise ratio (log-uniform)",
    "snr_max": "highest signal-to-noise ratio",
    "giant_fraction": "share of giants among the stars",
    "spectra_per_star": "epochs per star (same labels, new noise)",
    "resolution": "resolving power R of the instrument profile (HARPS: 115,000)",
    "dtype": "stored flux dtype: float16 (the archive format, half the bytes) or float32",
    "wave_offset": "a calibration zero-point per spectrum, U(±this) Å (label wave_offset; 0: none)",
    "wave_stretch": "a dispersion stretch about the grid's middle per spectrum, U(±this) (label wave_stretch; 0: none)",
    "tellurics": "peak optical depth of the strongest O2/H2O line at airmass 1, the lines fixed in the observed "
    "frame, airmass U(1, 2) (label airmass; 0: none)",
}


def count(text: str) -> int:
    """A whole number from the command line, in any notation that names one (``20000``, ``2e4``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def main(argv: list[str]) -> int:
    """The ``synth`` command: write a synthetic store."""
    defaults = SynthSpec()
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning synth",
        description="Write HARPS-like synthetic spectra with known labels to a Zarr store.",
    )
    p.add_argument("--output", required=True, help="store path to create (must not exist)")
    hints = typing.get_type_hints(SynthSpec)
    for f in fields(SynthSpec):
        if f.name == "grid":
            p.add_argument(
                "--grid",
                default=defaults.grid,
                help=f"a named grid ({', '.join(GRIDS)}), START:STOP:STEP[:LENGTH] in Å or "
                "log:START:STOP:STEP[:LENGTH] with STEP in dex (default %(default)s)",
            )
            continue
        choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is typing.Literal else None
        kind = type(getattr(defaults, f.name))
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=count if kind is int else kind,
            default=getattr(defaults, f.name),
            choices=choices,
            help=(SYNTH_HELP.get(f.name, "") + " (default %(default)s)").strip(),
        )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        spec = SynthSpec(**{f.name: getattr(a, f.name) for f in fields(SynthSpec)})
        synthesize(a.output, spec, progress=not a.quiet)
    except (ValueError, OSError) as e:  # StoreError, a held lock, unknown grid, a bad value
        p.exit(2, f"synth: error: {e}\n")
    except KeyboardInterrupt:
        p.exit(130, f"synth: interrupted: nothing written at {a.output}\n")
    print(f"wrote {spec.n} spectra to {a.output}")
    return 0
