import numpy as np
import pytest

from spectra_lightning.physics.grid import CCD_GAP, GRIDS, SpectralGrid


def test_harps_grid_constants():
    g = SpectralGrid.named("harps")
    assert g.n_pixels == 312_501
    assert (g.pad_left, g.pad_right, g.length) == (7_589, 7_590, 327_680)
    assert g.wavelength[g.pad_left] == pytest.approx(3785.0)
    assert g.wavelength[g.pad_left + g.n_pixels - 1] == pytest.approx(6910.0)
    gap = np.flatnonzero(g.gap_mask)
    assert (gap[0], gap[-1], len(gap)) == (159_453, 162_893, 3_441)
    assert g.wavelength[gap[0]] == pytest.approx(5303.64) and g.wavelength[gap[-1]] == pytest.approx(5338.04)
    assert CCD_GAP == pytest.approx((5303.64, 5338.04))
    # masked = padding + gap
    assert (~g.valid).sum() == 7_589 + 7_590 + 3_441


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_named_grids_fit_the_network(name):
    g = GRIDS[name]
    assert g.length % 2**4 == 0 and g.length >= g.n_pixels
    if not g.mask_gap:  # MILES, the surveys and the shifts study's band: no HARPS CCD gap
        assert name in ("miles", "sdss", "lamost", "apogee", "wide")
        assert g.gap_mask.sum() == 0 and g.n_valid == g.n_pixels
        return
    assert g.gap_mask.sum() > 0  # every HARPS grid crosses the CCD gap
    inside = g.wavelength[g.gap_mask]
    assert inside.min() >= CCD_GAP[0] - 1e-6 and inside.max() <= CCD_GAP[1] + 1e-6


def test_short_grid_lengths():
    g = SpectralGrid(5000.0, 5655.0, 0.08, 8192)
    assert g.n_pixels == 8188 and g.pad_left == 2 and g.pad_right == 2
    with pytest.raises(ValueError, match="length"):
        SpectralGrid(5000.0, 5655.0, 0.08, 4096)


def test_resample_linear_and_masks_nonfinite():
    g = SpectralGrid(5000.0, 5010.0, 0.1, 128, mask_gap=False)
    wave = np.linspace(4990, 5008, 400)
    flux = 2.0 + 0.5 * (wave - 5000)  # linear: interpolation is exact
    flux[200] = np.nan
    out = g.resample(wave, flux, method="linear")
    w = g.wavelength
    covered = g.valid & (w <= 5008)
    bad = (w > wave[199]) & (w < wave[201])
    ok = covered & ~bad
    np.testing.assert_allclose(out[ok], 2.0 + 0.5 * (w[ok] - 5000), rtol=1e-12)
    assert np.isnan(out[bad]).all() and bad.sum() >= 1
    assert np.isnan(out[~covered]).all()  # padding and beyond the input's coverage


def test_unknown_grid_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown grid 'nope'"):
        SpectralGrid.named("nope")


def test_resample_mean_is_flux_conserving_and_exact_on_grid():
    g = SpectralGrid(5000.0, 5010.0, 0.1, 128, mask_gap=False)
    fine = 5000.0 + (np.arange(-50, 1100) + 0.5) * 0.01  # 10 input pixels per output pixel
    flux = np.sin(fine)
    out = g.resample(fine, flux)  # auto -> mean
    i = g.pad_left + 40
    members = np.abs(fine - g.wavelength[i]) < 0.05 - 1e-9
    assert members.sum() == 10 and out[i] == pytest.approx(flux[members].mean())
    flux[np.argmin(np.abs(fine - g.wavelength[i]))] = np.inf
    out2 = g.resample(fine, flux)
    assert np.isnan(out2[i]) and np.isfinite(out2[i - 1]) and np.isfinite(out2[i + 1])
    # an input on the grid itself is copied exactly, and a NaN masks only its own pixel
    on = g.wavelength[g.valid]
    vals = np.arange(on.size, dtype=float)
    vals[7] = np.nan
    got = g.resample(on, vals)[g.valid]
    assert np.isnan(got[7]) and np.array_equal(np.delete(got, 7), np.delete(vals, 7))


@pytest.mark.parametrize(
    "start, step, jitter", [(3781.2345, 0.01, 0.0), (3790.004, 0.0137, 0.0), (3781.0, 0.01, 0.003)]
)
def test_resample_linear_equals_numpy_interp(start, step, jitter):
    """Off-grid inputs (evenly spaced: located by arithmetic; uneven: by search) give np.interp."""
    g = SpectralGrid.named("harps")
    rng = np.random.default_rng(0)
    wave = start + step * np.arange(200_000) + jitter * rng.random(200_000) * step
    flux = 1 + 0.1 * rng.standard_normal(wave.size)
    out = g.resample(wave, flux, method="linear")
    inside = g.valid & (g.wavelength >= wave[0]) & (g.wavelength <= wave[-1])
    # rtol: a neighbour with weight < 1e-6 is dropped by design (it cannot poison the pixel)
    np.testing.assert_allclose(
        out[inside], np.interp(g.wavelength[inside], wave, flux), rtol=0, atol=2e-6 * np.abs(flux).max()
    )
    assert np.isnan(out[~inside]).all()


def test_resample_linear_without_overlap_is_all_masked():
    g = SpectralGrid(5000.0, 5010.0, 0.1, 128, mask_gap=False)
    wave = np.linspace(6000, 6010, 50)  # off-grid input entirely outside the grid
    assert np.isnan(g.resample(wave, np.ones(50), method="linear")).all()


def test_explicit_grids_parse_and_bad_specs_say_why():
    g = SpectralGrid.parse("3540.5:7409.6:0.9")
    assert (g.n_pixels, g.length, g.mask_gap) == (4300, 4300, False)
    assert SpectralGrid.parse("3540.5:7409.6:0.9:4352") == GRIDS["miles"]
    assert SpectralGrid.parse("harps") is GRIDS["harps"]
    for bad, why in (
        ("nope", "expected a name"),
        ("1:2:x", "expected a name"),
        ("7:5:1", "START < STOP"),
        ("5000:6000:0.5:10", "LENGTH 10 is shorter than its 2001"),
    ):
        with pytest.raises(ValueError, match=why):
            SpectralGrid.parse(bad)


def test_the_sdss_grid_is_the_survey_lattice():
    g = SpectralGrid.named("sdss")
    on = g.wavelength[g.pad_left : g.pad_left + g.n_pixels]
    assert g.n_pixels == 4700 and g.length == 4736 and g.medium == "vacuum"
    np.testing.assert_allclose(np.log10(on), 3.55 + 1e-4 * np.arange(4700), atol=1e-12)
    np.testing.assert_allclose(g.index_of(on), g.pad_left + np.arange(4700), atol=1e-6)
    assert g.pixel_width(5000.0) == pytest.approx(5000.0 * np.log(10) * 1e-4)


def test_an_explicit_log_grid_and_its_medium():
    g = SpectralGrid.parse("log:3548.1:10471.3:1e-4:4736")
    assert g.log and g.medium == "vacuum" and g.length == 4736 and g.n_pixels == 4701
    assert SpectralGrid.parse("log:15100:17000:6e-6:air").medium == "air"
    assert not SpectralGrid.parse("5000:5100:0.5").log and SpectralGrid.parse("5000:5100:0.5").medium == "air"
    assert SpectralGrid(**g.describe()) == g
    with pytest.raises(ValueError, match="log:START:STOP:STEP"):
        SpectralGrid.parse("log:3548")


def test_a_spectrum_on_the_lattice_is_placed_pixel_for_pixel():
    g = SpectralGrid.named("sdss")
    wave = 10 ** (3.5516 + 1e-4 * np.arange(4625))  # a BOSS spectrum: 16 pixels in
    flux = np.random.default_rng(0).normal(size=4625)
    out = g.resample(wave, flux)
    start = g.pad_left + 16
    np.testing.assert_array_equal(out[start : start + 4625], flux)  # copied, not interpolated
    assert np.isnan(out[:start]).all()


def test_a_doppler_shift_on_a_log_grid_is_a_translation():
    import torch

    from spectra_lightning.physics.doppler import C_KMS, DopplerShift

    g = SpectralGrid.named("sdss")
    wave = g.wavelength
    line = 1 - 0.6 * np.exp(-0.5 * ((wave - 6000.0) / 1.0) ** 2)
    v = torch.tensor([-300.0, 0.0, 500.0])
    out = DopplerShift(wave)(torch.tensor(line, dtype=torch.float32).repeat(3, 1), v)
    depth = (1 - out).numpy()
    window = np.abs(wave - 6000) < 30
    centroid = (depth[:, window] * wave[window]).sum(1) / depth[:, window].sum(1)
    np.testing.assert_allclose(centroid, 6000.0 * (1 + v.numpy() / C_KMS), atol=0.02)


@pytest.mark.parametrize("grid_name, step_ratio", [("tiny", 0.3), ("tiny", 1.7), ("sdss", None)])
def test_resampled_variance_matches_the_scatter_of_resampled_noise(grid_name, step_ratio):
    """Ground truth by simulation: resample many noise draws of known per-pixel σ; the spread of the outputs is
    what ``variance=True`` predicts (box mean for a finer input, interpolation for a coarser one, a copy on the
    lattice)."""
    from spectra_lightning.physics.grid import GRIDS

    grid = GRIDS[grid_name]
    rng = np.random.default_rng(1)
    if step_ratio is None:  # the grid's own lattice: a copy
        wave = grid.wavelength[10:300]
    else:
        lo, hi = grid.wavelength[20], grid.wavelength[-20]
        wave = np.arange(lo, hi, grid.step * step_ratio)
    sigma = rng.uniform(0.5, 2.0, wave.size)
    draws = np.stack([grid.resample(wave, rng.normal(0, sigma)) for _ in range(3000)])
    predicted = grid.resample(wave, sigma**2, variance=True)
    ok = np.isfinite(predicted)
    assert ok.sum() > 50 and np.array_equal(ok, np.isfinite(draws[0]))
    measured = draws[:, ok].var(axis=0)
    # the sample variance of 3,000 draws is good to ~2.6 % (1σ): medians within 2 %, every pixel within 15 %
    ratio = measured / predicted[ok]
    assert abs(np.median(ratio) - 1) < 0.02 and np.all(np.abs(ratio - 1) < 0.15)
    if step_ratio is None:  # output pixel 10 + i is input pixel i
        inner = ok[10:300]
        np.testing.assert_array_equal(predicted[10:300][inner], (sigma**2)[inner])


def gaussian_line(wave, centre=5050.123, sigma=0.08, depth=0.6):
    return 1 - depth * np.exp(-0.5 * ((wave - centre) / sigma) ** 2)


@pytest.mark.parametrize("kind", ["regular", "random"])
def test_flux_conserving_resampling_keeps_a_narrow_lines_equivalent_width(kind):
    """Ground truth: a Gaussian absorption line's equivalent width, depth·σ·√(2π), sampled on a fine input grid (a
    regular 1e-5-dex one, or random steps) and rebinned onto 0.5-Å pixels: within 0.1 % (the box mean of pixel
    centres it replaced lost 3.3 % and 4.7 %)."""
    g = SpectralGrid(5000.0, 5100.0, 0.5, 208, mask_gap=False)
    rng = np.random.default_rng(0)
    if kind == "regular":
        wave = 10 ** np.arange(np.log10(4990.0), np.log10(5110.0), 1e-5)
    else:
        wave = 4990.0 + np.cumsum(rng.uniform(0.7, 1.3, 300_000)) * 4e-4
    for centre in (5050.123, 5050.37, 5061.01):  # where the line falls on the output pixels changes nothing
        out = g.resample(wave, gaussian_line(wave, centre), method="mean")
        ew = np.nansum(1 - out) * g.step
        assert ew == pytest.approx(0.6 * 0.08 * np.sqrt(2 * np.pi), rel=1e-3)


def test_rebinning_conserves_the_total_flux_over_the_overlap():
    """Σ output × width over the output pixels equals the integral of the (piecewise-constant) input over the
    same span, to rounding, on an irregular input with a gap; outputs that reach into the gap are NaN."""
    from spectra_lightning.physics.grid import input_edges, rebin

    rng = np.random.default_rng(3)
    wave = 6000.0 + np.cumsum(rng.uniform(0.05, 0.09, 4000))
    wave[2000:] += 5.0  # a 5-Å gap between two chips
    flux = rng.uniform(0.5, 2.0, wave.size)
    lo = np.arange(6002.0, wave[-1] - 1, 0.3)
    hi = lo + 0.3
    out = rebin(wave, flux, lo, hi)
    a, b = input_edges(wave)
    gap = (b[1999], a[2000])
    assert gap[1] - gap[0] == pytest.approx(5.0, abs=0.1)
    touches_gap = (hi > gap[0]) & (lo < gap[1])
    assert np.all(np.isnan(out[touches_gap])) and np.all(np.isfinite(out[~touches_gap]))
    for part in (hi <= gap[0], lo >= gap[1]):
        span = (lo[part][0], hi[part][-1])
        overlap = np.clip(np.minimum(b, span[1]) - np.maximum(a, span[0]), 0, None)
        assert np.sum(out[part] * 0.3) == pytest.approx(np.sum(flux * overlap), rel=1e-12)
