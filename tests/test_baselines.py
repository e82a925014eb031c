"""Label-free baselines against ground truth: a line moved by exactly v/c·λ, a known colour, a rank-1 set."""

import numpy as np

from spectra_lightning.metrics.baselines import C_KMS, LabelFreeBaselines, ccf_lags

WAVE = np.arange(5000.0, 5200.0, 0.05)  # 4,000 px, ~3 km/s per px
LINES = np.random.default_rng(0).uniform(5005, 5195, 40)


def spectra(v: np.ndarray, slope: np.ndarray | None = None) -> np.ndarray:
    """Continuum 1 (times a slope) with 40 Gaussian lines (σ 0.15 Å), observed at velocity ``v`` (km/s)."""
    out = np.ones((len(v), len(WAVE)))
    for i, vi in enumerate(v):
        centres = LINES * (1 + vi / C_KMS)
        out[i] -= 0.5 * np.exp(-0.5 * ((WAVE[:, None] - centres[None, :]) / 0.15) ** 2).sum(axis=1)
    if slope is not None:
        out *= 1 + slope[:, None] * (WAVE - WAVE.mean()) / np.ptp(WAVE)
    return out


def test_the_ccf_velocity_recovers_an_exact_doppler_shift():
    rng = np.random.default_rng(1)
    v_train = rng.uniform(-40, 40, 200)
    mask = np.ones((200, len(WAVE)), bool)
    b = LabelFreeBaselines(WAVE).fit(spectra(v_train), mask)
    v = np.array([-35.0, -12.5, 0.0, 7.3, 28.0])
    got = b.ccf_velocity(spectra(v), np.ones((5, len(WAVE)), bool))
    # relative velocities: the template's zero point is one training spectrum's (unknown without labels)
    offset = got - v
    assert np.ptp(offset) < 0.6 and abs(offset.mean()) < 40  # a fifth of a pixel (3 km/s), one constant


def test_masked_pixels_do_not_move_the_ccf():
    rng = np.random.default_rng(2)
    mask = np.ones((100, len(WAVE)), bool)
    b = LabelFreeBaselines(WAVE).fit(spectra(rng.uniform(-20, 20, 100)), mask)
    flux, m = spectra(np.array([15.0])), np.ones((1, len(WAVE)), bool)
    m[0, 1000:1400] = False
    flux[0, 1000:1400] = 0.0  # what the network sees there
    a, c = b.ccf_velocity(spectra(np.array([15.0])), np.ones_like(m)), b.ccf_velocity(flux, m)
    assert abs(a[0] - c[0]) < 0.5


def test_the_colour_is_the_blue_to_red_ratio_in_magnitudes():
    flux = np.ones((2, 300))
    flux[1, :100] = 10**0.4  # the bluest third 1 mag brighter
    mask = np.ones_like(flux, bool)
    np.testing.assert_allclose(LabelFreeBaselines.colour(flux, mask), [0.0, -1.0])
    mask[1, :100] = False  # masked pixels are not in the thirds
    assert abs(LabelFreeBaselines.colour(flux, mask)[1]) < 1e-12


def test_the_first_component_is_the_direction_the_spectra_vary_along():
    rng = np.random.default_rng(3)
    a = rng.normal(size=300)
    base, direction = rng.normal(size=500), rng.normal(size=500)
    flux = base + a[:, None] * direction + 1e-3 * rng.normal(size=(300, 500))
    b = LabelFreeBaselines(np.linspace(4000, 5000, 500)).fit(flux, np.ones_like(flux, bool))
    pc1 = b.features(flux, np.ones_like(flux, bool))[:, 0]
    assert abs(np.corrcoef(pc1, a)[0, 1]) > 0.999


def test_long_spectra_are_averaged_in_blocks_before_pca():
    wave = np.linspace(3785, 6910, 20_000)
    b = LabelFreeBaselines(wave)
    assert b.block == 3
    flux = np.random.default_rng(4).normal(size=(20, 20_000))
    f = b.fit(flux, np.ones_like(flux, bool)).features(flux, np.ones_like(flux, bool))
    assert f.shape == (20, 5) and b.components.shape == (3, 6667) and b.names[-1] == "ccf_velocity"


def test_on_a_log_grid_the_ccf_redshift_scans_every_shift():
    """Ground truth: galaxy-like spectra (emission lines at fixed rest wavelengths) redshifted by z up to 0.6 on the
    SDSS grid, where z moves every line by log10(1 + z)/1e-4 px (thousands of pixels): ``ccf_z`` gives (1 + z) up to
    the template's own factor, one constant for all; the ±1,000 km/s CCF cannot."""
    from spectra_lightning.physics.grid import GRIDS

    grid = GRIDS["sdss"]
    wave = grid.wavelength
    rest = np.array([3727.0, 4101.7, 4340.5, 4861.3, 4958.9, 5006.8, 5175.0, 6562.8, 6583.4])

    def galaxies(z: np.ndarray) -> np.ndarray:
        out = np.ones((len(z), len(wave)))
        for i, zi in enumerate(z):
            centres = rest * (1 + zi)
            out[i] += 2.0 * np.exp(-0.5 * ((wave[:, None] - centres[None, :]) / (1.5 * (1 + zi))) ** 2).sum(axis=1)
        return out

    rng = np.random.default_rng(4)
    mask_train = np.ones((150, len(wave)), bool)
    b = LabelFreeBaselines(wave).fit(galaxies(rng.uniform(0.0, 0.6, 150)), mask_train)
    assert b.names[-1] == "ccf_z"
    z = np.array([0.02, 0.11, 0.25, 0.4, 0.58])
    got = b.features(galaxies(z), np.ones((len(z), len(wave)), bool))[:, -1]
    template = (1 + z) / (1 + got)  # (1 + z_template): the same for every spectrum
    assert np.ptp(template) < 3 * np.log(10) * 1e-4 * template.mean()  # within a few of the grid's pixels
    assert LabelFreeBaselines(WAVE).names[-1] == "ccf_velocity"  # a linear grid has no ccf_z


def test_ccf_lags_in_a_band_read_that_band_s_shift_only():
    """Two sets of lines moved by different amounts (a star's by its velocity, telluric ones by the instrument's
    zero-point only): correlated over the band where only the second set lies, against that set's own template,
    ``ccf_lags`` returns the second shift (sub-pixel), not the first — what a telluric-referenced velocity uses."""
    x = np.arange(2000.0)
    star_at, tell_at = np.array([200.0, 450.0, 700.0]), np.array([1400.0, 1480.0, 1610.0, 1750.0])

    def lines(at: np.ndarray, shift: np.ndarray) -> np.ndarray:
        return -np.exp(-0.5 * ((x[None, None, :] - at[None, :, None] - shift[:, None, None]) / 1.5) ** 2).sum(1)

    star_shift, tell_shift = np.array([3.3, -2.6, 0.0]), np.array([-0.4, 0.7, 1.25])
    profile = lines(star_at, star_shift) + lines(tell_at, tell_shift)
    band = x > 1300
    template = np.where(band, lines(tell_at, np.zeros(1))[0], 0.0)
    got = ccf_lags(np.where(band, profile, 0.0), template, max_shift=8)
    np.testing.assert_allclose(got, tell_shift, atol=0.05)
    whole = ccf_lags(profile, lines(star_at, np.zeros(1))[0], max_shift=8)
    np.testing.assert_allclose(whole, star_shift, atol=0.05)
