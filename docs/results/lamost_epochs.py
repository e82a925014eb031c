"""A sanity check on real multi-epoch spectra (issue #43, part 3): does a model trained on the survey store put one
star's epochs on one code, and does its velocity node follow the barycentric correction?

    python docs/results/lamost_epochs.py --run RUN --store STORE --csv OUT.csv --summary OUT.json

RUN: a ``fit`` on the survey store (``--grid sdss``); STORE: that store. The LAMOST medium-resolution (MRS) spectra
in it (``product == "lamost_mrs"``, each arm, B and R, a spectrum of its own) are grouped by star: positions within
2 arcsec (the FITS headers' RA/Dec) are one star. Then, per arm:

* for each informative node, the spread of μ over one star's epochs (*within*) against its spread over every other
  object of the store, one spectrum each (*between*), both 1.4826 × the median absolute deviation (the paper's
  M.A.D., scaled to a standard deviation), and the farthest epoch from the star's median, in units of *between*;
* for the velocity node (the run's best node for ``z``), μ per epoch beside the barycentric correction of that
  epoch, computed by astropy from the exposure's middle (``DATE-BEG``/``DATE-END``), the header's RA/Dec and the
  site's longitude and latitude (``LONGITUD``/``LATITUDE``; height 960 m, Xinglong: a kilometre moves the correction
  by under 1 m/s), and the pipeline's own ``HELIO_RV``. LAMOST's MRS pipeline has already moved these spectra to
  the heliocentric frame (``HELIO = True``): a node that reads the star should then *not* follow the correction.

A handful of spectra of two stars: a sanity check, not a result. Nothing is fetched (astropy's built-in ephemeris,
no IERS download).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.utils import iers
from shift_study import sig  # this folder's: 4 significant digits

from spectra_lightning.analysis.codes import load_codes
from spectra_lightning.analysis.encode import encode
from spectra_lightning.common.files import write_atomic, write_csv
from spectra_lightning.physics.grid import C_KMS
from spectra_lightning.store import SpectraStore

SITE_HEIGHT_M = 960.0  # Xinglong Station; the headers give longitude and latitude only
SAME_STAR_ARCSEC = 2.0


def epoch_of(path: str) -> dict:
    """What one MRS file's primary header says of its exposure: position, middle of exposure, site, the pipeline's
    heliocentric correction."""
    h = fits.getheader(path, 0)
    middle = Time(h["DATE-BEG"], scale="utc") + 0.5 * (
        Time(h["DATE-END"], scale="utc") - Time(h["DATE-BEG"], scale="utc")
    )
    return {
        "ra": float(h["RA"]),
        "dec": float(h["DEC"]),
        "time": middle,
        "site": EarthLocation.from_geodetic(
            float(h["LONGITUD"]) * u.deg, float(h["LATITUDE"]) * u.deg, SITE_HEIGHT_M * u.m
        ),
        "helio_rv": float(h["HELIO_RV"]) if "HELIO_RV" in h else float("nan"),
        "helio_applied": bool(h.get("HELIO", False)),
    }


def barycentric_kms(e: dict) -> float:
    """The barycentric correction (km/s) for the exposure: what to add to a measured RV."""
    iers.conf.auto_download = False
    star = SkyCoord(e["ra"] * u.deg, e["dec"] * u.deg)
    v = star.radial_velocity_correction(kind="barycentric", obstime=e["time"], location=e["site"])
    return float(v.to(u.km / u.s).value)


def group_stars(epochs: list[dict]) -> np.ndarray:
    """One integer per spectrum: its star (positions within :data:`SAME_STAR_ARCSEC`), numbered by first sight."""
    stars: list[SkyCoord] = []
    out = []
    for e in epochs:
        here = SkyCoord(e["ra"] * u.deg, e["dec"] * u.deg)
        match = [k for k, s in enumerate(stars) if here.separation(s).arcsec < SAME_STAR_ARCSEC]
        if not match:
            stars.append(here)
        out.append(match[0] if match else len(stars) - 1)
    return np.array(out)


def codes_of(run: Path, store: Path) -> np.ndarray:
    """μ ``(N, D)`` of every spectrum of the store, encoded by the run's last checkpoint."""
    with tempfile.TemporaryDirectory() as tmp:
        path = encode(run / "checkpoints" / "last.ckpt", store, Path(tmp) / "codes.zarr", progress=False)
        return load_codes(path)["mu"]


def velocity_readout(mu: np.ndarray, z: np.ndarray, stars: np.ndarray) -> tuple[float, float]:
    """km/s per unit of the velocity node, fitted over the store's stars with a redshift (c·z against μ), and the
    fit's residual r.m.s. (km/s): how finely the node could read a star's velocity at all."""
    ok = stars & np.isfinite(z)
    slope, intercept = np.polyfit(mu[ok], C_KMS * z[ok], 1)
    return float(slope), float(np.std(C_KMS * z[ok] - slope * mu[ok] - intercept))


def robust_spread(x: np.ndarray) -> float:
    """1.4826 × the median absolute deviation: a standard deviation that one bad exposure does not set."""
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def spreads(mu: np.ndarray, rows: np.ndarray, others: np.ndarray, contrast: np.ndarray, nodes: list[int]) -> list[dict]:
    """Per informative node: μ's spread (:func:`robust_spread`) over one star's epochs ``rows`` against its spread
    over ``others`` (one spectrum per other object of the store); in units of the latter, the farthest epoch from
    the star's median (``worst_epoch``) and the other MRS stars' distance from it (``other_star``, same arm: the
    same few per cent of the grid covered, so the mask alone cannot tell them apart)."""
    out = []
    for j in nodes:
        within, between = robust_spread(mu[rows, j]), robust_spread(mu[others, j])
        centre = np.median(mu[rows, j])
        out.append(
            {
                "node": j,
                "within": round(within, 4),
                "between": round(between, 4),
                "ratio": round(within / between, 3),
                "worst_epoch": round(float(np.max(np.abs(mu[rows, j] - centre))) / between, 2),
                "other_star": round(float(np.min(np.abs(mu[contrast, j] - centre))) / between, 2)
                if len(contrast)
                else None,
            }
        )
    return out


def one_per_object(objects: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Row indices, the first spectrum of each object not in ``exclude``."""
    _, first = np.unique(objects, return_index=True)
    return np.array(sorted(i for i in first if not exclude[i]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, type=Path, help="a fit on the survey store")
    p.add_argument("--store", required=True, type=Path, help="the survey store it was trained on")
    p.add_argument("--csv", required=True, type=Path, help="per epoch and arm: the velocity node and the correction")
    p.add_argument("--summary", required=True, type=Path, help="per arm and node: within- and between-star spreads")
    a = p.parse_args()
    report = json.loads((a.run / "report.json").read_text())
    informative, vnode = [int(j) for j in report["mad"]["informative"]], int(report["mi"]["ksg"]["z"]["best_node"])
    store = SpectraStore.open(a.store)
    meta, mu = store.meta, codes_of(a.run, a.store)
    mrs = np.flatnonzero(meta["product"] == "lamost_mrs")
    epochs = [epoch_of(str(meta["source"][i])) for i in mrs]
    star_of = group_stars(epochs)
    slope, floor = velocity_readout(mu[:, vnode], meta["z"], meta["class"] == "STAR")
    rows, summary = [], {"run": str(a.run), "velocity_node": vnode, "kms_per_unit": round(slope, 1)}
    summary["readout_rms_kms"] = round(floor, 1)
    is_mrs = np.zeros(store.n, bool)
    is_mrs[mrs] = True
    others = one_per_object(meta["object"], is_mrs)
    for k, i in enumerate(mrs):
        e = epochs[k]
        rows.append(
            {
                "id": str(meta["id"][i]),
                "star": int(star_of[k]),
                "arm": str(meta["arm"][i]),
                "mjd": round(e["time"].mjd, 4),
                "coverage": round(float(meta["coverage"][i]), 3),
                "barycentric_kms": round(barycentric_kms(e), 3),
                "helio_rv_header_kms": e["helio_rv"],
                "helio_applied": int(e["helio_applied"]),
                "velocity_mu": round(float(mu[i, vnode]), 4),
                "velocity_kms": round(slope * float(mu[i, vnode]), 1),
                "raw_median": sig(meta["raw_median"][i]),
            }
        )
    summary["stars"] = {}
    for star in np.unique(star_of):
        for arm in ("B", "R"):
            same_arm = meta["arm"][mrs] == arm
            sel, contrast = mrs[(star_of == star) & same_arm], mrs[(star_of != star) & same_arm]
            if len(sel) < 2:
                continue
            nodes = spreads(mu, sel, others, contrast, informative)
            summary["stars"][f"{star}{arm}"] = {"epochs": len(sel), "nodes": nodes}
    summary["n_between"] = len(others)
    write_csv(a.csv, rows)
    write_atomic(a.summary, json.dumps(summary, indent=1))
    print(json.dumps(summary)[:2000])


if __name__ == "__main__":
    main()
