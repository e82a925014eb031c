"""The compiled grid work equals the numpy reference bit for bit (placement, median, float16 cast)."""

import numpy as np
import pytest

from spectra_lightning.ingest.placement import on_grid_row
from spectra_lightning.ingest.readers import read
from spectra_lightning.physics import grid_kernel
from spectra_lightning.physics.grid import SpectralGrid

from helpers import real_file

pytestmark = pytest.mark.skipif(not grid_kernel.available, reason="numba is not installed (pip install -e '.[fast]')")
HARPS = SpectralGrid.named("harps")
TINY = SpectralGrid.named("tiny")


def place(grid, wave, flux):
    out = np.empty(grid.length)
    ok = grid_kernel.place_linear(
        np.asarray(wave, float), np.asarray(flux), grid.valid, grid.wave_min, grid.step, grid.pad_left, out
    )
    return out if ok else None


def test_float16_cast_rounds_as_numpy():
    rng = np.random.default_rng(0)
    halves = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(float)
    halves = np.sort(halves[np.isfinite(halves)])
    ties = (halves[:-1] + halves[1:]) / 2  # exactly halfway: round to even, also between subnormals
    values = np.concatenate(
        [
            halves,
            ties,
            np.nextafter(ties, np.inf),
            np.nextafter(ties, -np.inf),
            rng.standard_normal(200_000) * 10.0 ** rng.uniform(-12, 7, 200_000),
            [0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.99, 65520.0, 1e300, -1e-300],
        ]
    )
    out = np.empty(values.size, np.uint16)
    grid_kernel.to_float16(values, out)
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16).view(np.uint16)
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 1000, 1001, 100_000])
def test_median_of_orderings_and_ties_equals_numpy(n):
    rng = np.random.default_rng(n)
    cases = [
        rng.standard_normal(n),
        rng.integers(0, 3, n).astype(float),
        np.sort(rng.standard_normal(n)),
        np.sort(rng.standard_normal(n))[::-1].copy(),
        np.ones(n),
        np.r_[np.zeros(n // 2), np.ones(n - n // 2)],
    ]
    for a in cases:
        assert grid_kernel.finite_median(a, np.empty(n))[1] == np.median(a)


@pytest.mark.parametrize("length", [1, 2, 63, 64, 100, 8191, 8192, 8193, 20_000, 327_680])
def test_median_of_finite_pixels_equals_numpy(length):
    rng = np.random.default_rng(length)
    sample_stride = max(1, length // grid_kernel.SAMPLE)
    masked = rng.standard_normal(length)
    masked[rng.random(length) < 0.3] = np.nan
    masked[:: max(1, length // 7)] = np.inf
    misjudged = np.ones(length)  # the strided sample sees only zeros: the bracket misses, all pixels are used
    misjudged[::sample_stride] = 0.0
    sparse = np.full(length, np.nan)
    sparse[rng.random(length) < 0.01] = 2.0
    cases = [
        rng.standard_normal(length),
        masked,
        np.sort(rng.standard_normal(length)),
        misjudged,
        sparse,
        rng.integers(0, 3, length).astype(float),
        np.full(length, -np.inf),
    ]
    scratch = np.empty(length)
    for values in cases:
        finite = values[np.isfinite(values)]
        n, median = grid_kernel.finite_median(values, scratch)
        assert n == finite.size
        assert median == np.median(finite) if finite.size else np.isnan(median)


def test_placement_equals_numpy_linear_resampling():
    rng = np.random.default_rng(1)
    for wave in (
        5100.0 + 0.37 * np.arange(900),  # off the grid, evenly spaced, overlapping both ends
        np.sort(rng.uniform(5140.0, 5300.0, 700)),  # uneven
        5150.0 + 0.5 * np.arange(300),  # on the grid: a copy
        np.repeat(5200.0 + 0.8 * np.arange(100), 2),
    ):  # repeated wavelengths
        flux = rng.normal(1.0, 0.1, wave.size)
        flux[rng.choice(wave.size, 20, replace=False)] = np.nan
        for f in (flux, flux.astype(np.float32)):
            got = place(TINY, wave, f)
            assert np.array_equal(got, TINY.resample(wave, f, method="linear"), equal_nan=True)


def test_placement_declines_unsorted_or_nan_wavelengths():
    wave = 5150.0 + 0.5 * np.arange(300)
    assert place(TINY, wave[::-1], np.ones(300)) is None
    wave[5] = np.nan
    assert place(TINY, wave, np.ones(300)) is None
    far = place(TINY, 7000.0 + np.arange(50.0), np.ones(50))  # no overlap: all masked
    assert far is not None and np.isnan(far).all()


@pytest.mark.parametrize(
    "rel",
    [
        "harps/adp/ADP.2014-09-16T11:04:45.123.fits",
        "harps/s1d/HARPS_GJ3470_s1d.fits",
        "harps/norm_gbs/HARPS_Sun.fits",
        "other/gbs/UVES.POP_Procyon.fits",
    ],
)
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_compiled_rows_equal_the_numpy_rows(rel, dtype, monkeypatch):
    spec = read(real_file(rel))[0]
    compiled = on_grid_row(spec, HARPS, dtype)
    monkeypatch.setattr(grid_kernel, "available", False)
    reference = on_grid_row(spec, HARPS, dtype)
    assert compiled[1:] == reference[1:]  # unmasked pixels and the raw median
    assert compiled[1] > 100_000
    assert compiled[0].dtype == reference[0].dtype == np.dtype(dtype)
    bits = f"u{compiled[0].itemsize}"  # bit for bit, NaNs included
    assert np.array_equal(compiled[0].view(bits), reference[0].view(bits))
    for available in (False, True):  # written into a given row (ingest's shared slots) on both paths
        monkeypatch.setattr(grid_kernel, "available", available)
        out = np.full(HARPS.length, 7.0, dtype)
        row, n, median = on_grid_row(spec, HARPS, dtype, out=out)
        assert row is out and (n, median) == reference[1:]
        assert np.array_equal(out.view(bits), reference[0].view(bits))
