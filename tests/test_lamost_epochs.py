"""docs/results/lamost_epochs.py on the real LAMOST MRS files in ../shared: the barycentric correction astropy
computes for each exposure matches, in size, the heliocentric correction LAMOST's own pipeline wrote into the header
(an independent computation; the two differ by the Sun's motion about the barycentre and by the Earth's rotation,
which LAMOST's value leaves out: well under a km/s), and the epochs of one star are grouped as one."""

import importlib.util
import sys

import numpy as np
import pytest

from helpers import REPO

SURVEYS = REPO.parent / "shared" / "data" / "surveys" / "lamost_laspec"
ONE_STAR = [
    "med-58268-HIP95119KP01_sp12-076.fits.gz",
    "med-58625-TD192102N424113K01_sp12-076.fits.gz",
    "med-58649-TD193637N444141K01_sp10-159.fits.gz",
]
OTHER_STAR = "med-58408-TD230151N343645T01_sp01-015.fits"


@pytest.fixture(scope="module")
def lamost():
    if not SURVEYS.exists():
        pytest.skip(f"survey spectra not available: {SURVEYS} (needs ../shared beside the repo)")
    sys.path.insert(0, str(REPO / "docs" / "results"))  # the script imports its folder's shift_study
    try:
        spec = importlib.util.spec_from_file_location("lamost_epochs", REPO / "docs" / "results" / "lamost_epochs.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(REPO / "docs" / "results"))


def test_the_barycentric_correction_matches_the_pipelines_own_in_size(lamost):
    epochs = [lamost.epoch_of(str(SURVEYS / name)) for name in ONE_STAR + [OTHER_STAR]]
    ours = np.array([lamost.barycentric_kms(e) for e in epochs])
    theirs = np.array([e["helio_rv"] for e in epochs])
    assert all(e["helio_applied"] for e in epochs)
    # LAMOST writes the correction with the opposite sign; the sizes agree to the Earth's rotation (≤ 0.36 km/s at
    # Xinglong's latitude) plus the Sun's motion about the barycentre (~0.01 km/s) and rounding
    np.testing.assert_allclose(ours, -theirs, atol=0.6)
    # and the comparison can fail: between these exposures (another field, five months later) it moves by 20 km/s
    assert abs(ours[0] - ours[-1]) > 10


def test_one_stars_epochs_are_one_star_and_another_star_is_not(lamost):
    epochs = [lamost.epoch_of(str(SURVEYS / name)) for name in ONE_STAR + [OTHER_STAR]]
    # the three fields give the same star positions 0.3 arcsec apart: one star; the fourth file is another
    assert list(lamost.group_stars(epochs)) == [0, 0, 0, 1]


def test_the_robust_spread_is_a_standard_deviation_one_outlier_does_not_set(lamost):
    x = np.random.default_rng(0).normal(0.0, 2.0, 20_000)
    assert lamost.robust_spread(x) == pytest.approx(2.0, rel=0.03)
    assert lamost.robust_spread(np.append(x[:50], 1e6)) < 4.0
