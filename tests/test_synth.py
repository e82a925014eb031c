import numpy as np
import pytest

from spectra_lightning.grid import SpectralGrid
from spectra_lightning.store import SpectraStore
from spectra_lightning.synth import C_KMS, SynthSpec, draw_labels, render, synthesize


def one(**labels):
    base = dict(teff=5777.0, logg=4.44, feh=0.0, rv=0.0, vsini=2.0, snr=100.0)
    base.update(labels)
    return {k: np.array([v]) for k, v in base.items()}


def test_same_seed_same_bytes(tmp_path):
    spec = SynthSpec(n=40, seed=11, grid="tiny")
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    synthesize(str(a), spec, block=16, progress=False)
    synthesize(str(b), spec, block=16, progress=False)
    sa, sb = SpectraStore.open(a), SpectraStore.open(b)
    assert sa.read(np.arange(40)).tobytes() == sb.read(np.arange(40)).tobytes()
    for k in sa.meta:
        np.testing.assert_array_equal(sa.meta[k], sb.meta[k])
    other = SpectraStore.open(
        synthesize(str(tmp_path / "c.zarr"), SynthSpec(n=40, seed=12, grid="tiny"), progress=False)
    )
    assert not np.array_equal(other.read([0]), sa.read([0]), equal_nan=True)


@pytest.mark.parametrize("line,v", [(5371.49, 20.0), (5183.60, -35.0)])
def test_line_centre_moves_by_v_over_c(line, v):
    grid = SpectralGrid(line - 3.0, line + 3.0, 0.0005, 12_032, mask_gap=False)
    w = grid.wavelength

    def centre(rv):
        f = render(grid, one(rv=rv), None)[0]
        near = grid.valid & (np.abs(w - line * (1 + rv / C_KMS)) < 0.05)
        i = np.flatnonzero(near)[np.nanargmin(f[near])]
        y0, y1, y2 = f[i - 1], f[i], f[i + 1]  # parabola through the minimum
        return w[i] + 0.5 * grid.step * (y0 - y2) / (y0 - 2 * y1 + y2)

    assert centre(v) - centre(0.0) == pytest.approx(line * v / C_KMS, abs=2e-4)


def test_hotter_means_weaker_metal_lines_and_bluer_continuum():
    grid = SpectralGrid.named("quickstart")
    w = grid.wavelength
    cool = render(grid, one(teff=4800.0, vsini=1.0), None)[0]
    hot = render(grid, one(teff=6400.0, vsini=1.0), None)[0]

    def depth(f, line):  # relative depth of a metal line against its local maximum
        near = np.abs(w - line) < 1.5
        return 1 - np.nanmin(f[near & (np.abs(w - line) < 0.1)]) / np.nanmax(f[near])

    for line in (5371.49, 5405.77, 5586.76):  # Fe I
        assert depth(hot, line) < depth(cool, line)

    def slope(f):
        return np.nanpercentile(f[(w > 5000) & (w < 5100)], 95) / np.nanpercentile(f[(w > 5550) & (w < 5650)], 95)

    assert slope(hot) > slope(cool)


def test_gap_and_padding_are_masked():
    grid = SpectralGrid.named("tiny")
    f = render(grid, one(), None)[0]
    assert np.isnan(f[~grid.valid]).all() and np.isfinite(f[grid.valid]).all()
    assert np.nanmedian(f) == pytest.approx(1.0)


def test_labels_are_realistic():
    lab = draw_labels(SynthSpec(n=4000, seed=0, rv_dist="archive", rv_max=100.0))
    assert 3700 < lab["teff"].min() and lab["teff"].max() < 6900
    giants = lab["logg"] < 3.5
    assert 0.2 < giants.mean() < 0.4
    assert lab["teff"][giants].max() < 5400  # giants are cool
    assert np.abs(lab["rv"]).max() <= 100.0 and np.abs(lab["rv"]).std() > 15
    assert lab["snr"].min() >= 30 and lab["snr"].max() <= 300
    uni = draw_labels(SynthSpec(n=2000, seed=0, rv_max=30.0))["rv"]
    assert np.abs(uni).max() <= 30.0 and abs(uni.mean()) < 2.0
