import numpy as np
import pytest

from spectra_lightning.ingest.synth import C_KMS, SynthSpec, draw_labels, render, synthesize
from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.store import SpectraStore


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


@pytest.mark.parametrize("offset,stretch", [(0.3, 0.0), (0.0, 4e-4), (-0.2, -3e-4)])
def test_calibration_drift_moves_a_line_to_its_recorded_wavelength(offset, stretch):
    """A recorded wavelength is λ + offset + stretch·(λ − λ_mid), on top of the star's Doppler shift."""
    line, v = 5183.60, 25.0
    grid = SpectralGrid(line - 3.0, line + 3.0, 0.0005, 12_032, mask_gap=False)
    w, mid = grid.wavelength, 0.5 * (grid.wave_min + grid.wave_max)

    def centre(**drift):
        labels = one(rv=v, **{k: drift.get(k, 0.0) for k in ("wave_offset", "wave_stretch")})
        f = render(grid, labels, None)[0]
        i = np.flatnonzero(grid.valid)[np.nanargmin(f[grid.valid])]
        y0, y1, y2 = f[i - 1], f[i], f[i + 1]
        return w[i] + 0.5 * grid.step * (y0 - y2) / (y0 - 2 * y1 + y2)

    star = line * (1 + v / C_KMS)
    expected = offset + stretch * (star - mid)
    assert centre(wave_offset=offset, wave_stretch=stretch) - centre() == pytest.approx(expected, abs=2e-4)


def test_tellurics_stay_in_the_observed_frame_and_deepen_with_airmass():
    grid = SpectralGrid(6270.0, 6320.0, 0.02, 2560, mask_gap=False)  # the O2 γ band

    def telluric_log(**labels):
        """−ln of (spectrum with tellurics / the same without): the telluric optical depth up to a constant."""
        lab = one(**{"airmass": 1.0, **labels})
        return np.log(render(grid, lab, None)[0]) - np.log(render(grid, lab, None, tellurics=0.5)[0])

    base = telluric_log(rv=0.0)
    assert np.nanmax(base) - np.nanmin(base) > 0.05  # the band is there
    # the star's velocity does not move them (only the normalising median changes: a constant)
    moved_star = telluric_log(rv=60.0)
    assert np.nanstd(moved_star - base) < 1e-6
    # twice the airmass, twice the depth (up to the normalisation's constant)
    double = telluric_log(airmass=2.0)
    slope, _ = np.polyfit(base[grid.valid], double[grid.valid], 1)
    assert slope == pytest.approx(2.0, rel=1e-3)
    # a calibration offset of exactly 5 pixels moves them by 5 pixels
    shifted = telluric_log(wave_offset=5 * grid.step)
    valid = np.flatnonzero(grid.valid)[10:-10]
    np.testing.assert_allclose(
        shifted[valid] - shifted[valid].mean(), base[valid - 5] - base[valid - 5].mean(), atol=1e-6
    )


def test_competing_shifts_are_off_by_default_and_labelled_when_on(tmp_path):
    plain = SynthSpec(n=8, seed=1, grid="tiny")
    assert plain.labels == ("rv", "teff", "logg", "feh", "vsini", "snr")
    # a store cached before the options existed keeps its name: the digest of the same fields
    import hashlib
    import json
    from dataclasses import asdict

    old_fields = {k: v for k, v in asdict(plain).items() if k not in ("wave_offset", "wave_stretch", "tellurics")}
    assert plain.digest() == hashlib.sha1(json.dumps(old_fields, sort_keys=True).encode()).hexdigest()[:10]
    on = SynthSpec(n=64, seed=1, grid="tiny", wave_offset=0.4, wave_stretch=2e-4, tellurics=0.3)
    assert on.digest() != plain.digest()
    store = SpectraStore.open(synthesize(str(tmp_path / "s.zarr"), on, progress=False))
    for name, bound in (("wave_offset", 0.4), ("wave_stretch", 2e-4)):
        values = store.meta[name]
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.5 * bound
        assert abs(np.corrcoef(values, store.meta["rv"])[0, 1]) < 0.35  # drawn independently of RV
    assert 1.0 <= store.meta["airmass"].min() and store.meta["airmass"].max() <= 2.0
    # the labels the plain spec draws are the same with the options on: a drift does not reshuffle the stars
    a, b = draw_labels(SynthSpec(n=64, seed=1)), draw_labels(SynthSpec(n=64, seed=1, wave_offset=0.4))
    np.testing.assert_array_equal(a["teff"], b["teff"])
    np.testing.assert_array_equal(a["rv"], b["rv"])
    with pytest.raises(ValueError, match="wave_stretch -0.1: must be >= 0"):
        SynthSpec(wave_stretch=-0.1)


def test_a_set_too_large_for_memory_is_refused_before_drawing(tmp_path, capsys):
    """``synth --n 1e12`` died with an ArrayMemoryError traceback: now one line with the memory it would need."""
    from spectra_lightning.cli import main

    with pytest.raises(SystemExit) as e:
        main(["synth", "--output", str(tmp_path / "big.zarr"), "--n", "1e12", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "needs about 200,000.0 GB of memory" in err[0], err
    assert not (tmp_path / "big.zarr").exists()


def test_ctrl_c_during_synth_is_one_line_and_leaves_nothing(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "s.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spectra_lightning", "synth", "--output", str(out), "--n", "200000", "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob(".s.zarr.tmp-*")):  # building aside
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1].strip().splitlines()
    assert proc.returncode == 130 and err == [f"synth: interrupted: nothing written at {out}"], err
    assert not out.exists() and not any(tmp_path.glob(".s.zarr.tmp-*"))
