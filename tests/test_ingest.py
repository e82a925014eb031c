"""Ingest of the real archive spectra in ../shared/data/real (skipped when absent)."""

import gzip
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from spectra_lightning.ingest.pipeline import ingest
from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.store import SpectraStore

from helpers import REAL, harps_spectra, ingest_cmd, kill_when_rows, real_file

HARPS = SpectralGrid.named("harps")
C = 299_792.458


def one(tmp_path, path, name="s.zarr", **kw):
    out = tmp_path / name
    summary = ingest([str(path)], str(out), workers=1, progress=False, **kw)
    return SpectraStore.open(out), summary


def expected_on_grid(wave, flux):
    """The same pixels as astropy reads them, on the grid, divided by the same median."""
    w = HARPS.wavelength
    out = np.interp(w, wave, flux, left=np.nan, right=np.nan)
    out[~HARPS.valid] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out / np.nanmedian(out[HARPS.valid]), out


def test_adp_file_equals_astropy_read(tmp_path):
    path = real_file("harps/adp/ADP.2014-09-16T11:04:45.123.fits")
    store, summary = one(tmp_path, path)
    assert summary["ingested"] == 1 and summary["rejected"] == 0
    with fits.open(path) as h:
        wave, flux = h[1].data["WAVE"][0].astype(float), h[1].data["FLUX"][0].astype(float)
        hdr = h[0].header
    # the ADP grid is the paper's grid: a pure copy of the pixels 3785..6910 Å
    first = int(np.argmin(np.abs(wave - 3785.0)))
    assert wave[first] == pytest.approx(3785.0, abs=1e-6)
    expected, raw = expected_on_grid(wave, flux)
    got = store.read([0])[0]
    np.testing.assert_array_equal(np.isfinite(got), HARPS.valid)  # mask = padding + gap exactly
    np.testing.assert_allclose(got[HARPS.valid], expected[HARPS.valid], rtol=2e-3, atol=1e-4)  # float16
    m = store.meta
    assert m["id"][0] == "ADP.2014-09-16T11:04:45.123" and m["object"][0] == hdr["OBJECT"]
    assert m["instrument"][0] == "HARPS" and m["product"][0] == "adp"
    assert m["mjd"][0] == hdr["MJD-OBS"] and m["exptime"][0] == hdr["EXPTIME"]
    assert m["snr"][0] == hdr["HIERARCH ESO DRS SPE EXT SN50"] and m["berv"][0] == hdr["HIERARCH ESO DRS BERV"]
    assert m["airmass"][0] == hdr["AIRMASS"]
    assert m["raw_median"][0] == pytest.approx(np.nanmedian(raw[HARPS.valid]))
    assert m["low_flux"][0] == 0


def test_float32_store_keeps_float32_precision(tmp_path):
    path = real_file("harps/s1d/HARPS_Sun_Ganymede_s1d.fits")  # off the grid: resampled
    store, _ = one(tmp_path, path, dtype="float32")
    with fits.open(path) as h:
        hdr, flux = h[0].header, h[0].data.astype(float)
    wave = hdr["CRVAL1"] + (np.arange(flux.size) + 1 - hdr["CRPIX1"]) * hdr["CDELT1"]
    expected, _ = expected_on_grid(wave, flux)
    got = store.read([0])[0]
    assert store.flux.dtype == np.float32
    np.testing.assert_allclose(got[HARPS.valid], expected[HARPS.valid], rtol=1e-5)  # float16 would be ~5e-4 off


@pytest.mark.parametrize(
    "name", ["HARPS.2010-09-18T23:42:36.178_s1d_A.fits", "HARPS_Sun_Ganymede_s1d.fits", "HARPS_GJ3470_s1d.fits"]
)
def test_s1d_equals_astropy_read(tmp_path, name):
    path = real_file(f"harps/s1d/{name}")
    store, _ = one(tmp_path, path)
    with fits.open(path) as h:
        flux = h[0].data.astype(float)
        hdr = h[0].header
    wave = hdr["CRVAL1"] + (np.arange(flux.size) + 1 - hdr["CRPIX1"]) * hdr["CDELT1"]
    expected, raw = expected_on_grid(wave, flux)
    got = store.read([0])[0]
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected))
    np.testing.assert_allclose(got[np.isfinite(got)], expected[np.isfinite(expected)], rtol=2e-3, atol=1e-4)
    assert store.meta["product"][0] == "s1d" and store.meta["object"][0] == hdr["OBJECT"]
    assert store.meta["snr"][0] == hdr["HIERARCH ESO DRS SPE EXT SN50"]
    assert store.meta["low_flux"][0] == int(np.nanmedian(raw[HARPS.valid]) < 50)


def rest_frame(flux, rv, lo, hi):
    """Flux resampled to the rest frame on a fine grid within [lo, hi] Å."""
    w = HARPS.wavelength / (1 + rv / C)
    grid = np.arange(lo, hi, 0.002)
    f = np.interp(grid, w, np.nan_to_num(flux, nan=np.nanmedian(flux)))
    return grid, f - f.mean()


def test_e2ds_lines_up_with_an_s1d_of_a_similar_star(tmp_path):
    e2ds = real_file("harps/e2ds/HARPS.2003-12-13T06:19:48.371_e2ds_A.fits")  # Gl273 M3.5V, RV 18.402
    s1d = real_file("harps/s1d/HARPS.2010-09-18T23:42:36.178_s1d_A.fits")  # Gl581 M3V, RV -9.199
    store, summary = one(tmp_path, e2ds)
    assert summary["ingested"] == 1 and store.meta["product"][0] == "e2ds"
    other, _ = one(tmp_path, s1d, "t.zarr")
    a, b = store.read([0])[0], other.read([0])[0]
    assert np.isfinite(a[HARPS.valid]).mean() > 0.95  # the orders cover the grid
    for lo, hi in ((5160.0, 5200.0), (5880.0, 5900.0), (6100.0, 6170.0)):  # Mg b, Na D, Ca I
        g, fa = rest_frame(a, 18.402, lo, hi)
        _, fb = rest_frame(b, -9.199, lo, hi)
        lags = np.arange(-100, 101)  # ±0.2 Å in 0.002 Å steps
        cc = [np.dot(fa[100:-100], np.roll(fb, k)[100:-100]) for k in lags]
        shift = lags[int(np.argmax(cc))] * 0.002
        assert abs(shift) < HARPS.step, (lo, shift)


@pytest.mark.parametrize(
    "rel",
    [
        "other/gbs/NARVAL_HD22879.fits",
        "other/gbs/UVES.POP_Procyon.fits",
        "other/gbs/ESPaDOnS_61CygB.fits",
        "other/odusseas/SOPHIE_Gl908.fits",
        "other/gbs/arcturus_NOAO.fits",
    ],
)
def test_other_instruments_land_at_the_right_wavelengths(tmp_path, rel):
    store, _ = one(tmp_path, real_file(rel))
    f = store.read([0])[0].astype(float)
    w = HARPS.wavelength
    for line in (6162.173, 5183.604):  # Ca I, Mg I b1 (air); these spectra are in the rest frame
        near = np.flatnonzero(np.isfinite(f) & (np.abs(w - line) < 0.15))
        i = near[np.argmin(f[near])]
        y0, y1, y2 = f[i - 1], f[i], f[i + 1]
        centre = w[i] + 0.5 * HARPS.step * (y0 - y2) / (y0 - 2 * y1 + y2)
        assert centre == pytest.approx(line, abs=0.02)


def test_nm_units_are_converted():
    from spectra_lightning.ingest.readers import read

    spec = read(real_file("other/gbs/NARVAL_HD22879.fits"))[0]
    assert spec.wave[0] == pytest.approx(4800.0) and spec.wave[-1] == pytest.approx(6799.99, abs=0.01)


def read_both_ways(path):
    """``read`` parsing only the cards it needs, then the whole header: (Spectrum or reason) each."""
    from spectra_lightning.ingest.readers import RejectError, read

    out = []
    for all_cards in (False, True):
        try:
            out.append(read(path, all_cards=all_cards)[0])
        except RejectError as e:
            out.append(f"{type(e).__name__}: {e}")
    return out


def assert_same_spectrum(a, b):
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert a.product == b.product and a.flux.dtype == b.flux.dtype
    assert np.array_equal(a.wave, b.wave, equal_nan=True) and np.array_equal(a.flux, b.flux, equal_nan=True)
    assert a.meta.keys() == b.meta.keys()
    for k in a.meta:
        assert a.meta[k] == b.meta[k] or (a.meta[k] != a.meta[k] and b.meta[k] != b.meta[k]), k  # NaN == NaN


def test_reading_only_the_needed_cards_equals_reading_the_whole_header():
    files = sorted(REAL.rglob("*.fits")) if REAL.exists() else []
    if not files:
        pytest.skip(f"real spectra not available: {REAL}")
    for path in files:  # all 25: ADP, s1d, e2ds, CCF, calibration, normalised, other instruments
        assert_same_spectrum(*read_both_ways(path))


@pytest.mark.parametrize("damage", ["empty", "zeros", "header cut", "data cut", "table cut", "junk after", "gzip cut"])
def test_damaged_files_get_the_same_outcome_as_a_full_read(tmp_path, damage):
    s1d = real_file("harps/s1d/HARPS_GJ3470_s1d.fits").read_bytes()
    adp = real_file("harps/adp/ADP.2014-09-16T11:04:45.123.fits").read_bytes()
    data = {
        "empty": b"",
        "zeros": b"\0" * 2880,
        "header cut": adp[:100_000],
        "data cut": s1d[: len(s1d) // 2],
        "table cut": adp[: len(adp) // 2],
        "junk after": adp + b"junk" * 100,
        "gzip cut": gzip.compress(s1d)[:200_000],
    }[damage]
    path = tmp_path / "damaged.fits"
    path.write_bytes(data)
    fast, full = read_both_ways(path)
    assert_same_spectrum(fast, full)  # the same spectrum, or the same one-line reason
    assert isinstance(fast, str) == (damage != "junk after")


def test_needed_cards_are_found_among_thousands_with_long_values(tmp_path):
    from spectra_lightning.ingest.readers import PRIMARY_CARDS

    hdu = fits.PrimaryHDU(np.linspace(1.0, 2.0, 500).astype(np.float32))
    for i in range(2000):  # noise before, between and after the needed cards
        hdu.header[f"HIERARCH ESO INS NOISE{i} VAL"] = i
    values = {
        "OBJECT": "a very long object name " * 5,
        "ESO DRS CAL TH FILE": "HARPS.cal_TH_" + "x" * 80 + ".fits",
        "CUNIT1": "nm",
        "CTYPE1": "WAVE",
        "INSTRUME": "HARPS",
        "DATE-OBS": "2010-09-18T23:42:36.178",
        "ARCFILE": "HARPS.2010-09-18T23:42:36.178.fits",
    }
    for i, key in enumerate(PRIMARY_CARDS):
        if key not in ("ESO DRS CCF MASK", "ESO DRS BLAZE FILE"):  # (they would make it a CCF / an e2ds)
            hdu.header[f"HIERARCH {key}" if " " in key else key] = values.get(key, 500.0 + i)
        hdu.header[f"HIERARCH ESO OCS NOISE{i}"] = "x" * 50
    hdu.header.update(CRVAL1=500.0, CDELT1=0.01, CRPIX1=1.0)  # nm
    path = tmp_path / "long.fits"
    hdu.writeto(path)
    fast, full = read_both_ways(path)
    assert_same_spectrum(fast, full)
    assert fast.meta["object"] == values["OBJECT"].strip() and fast.meta["id"] == "HARPS.2010-09-18T23:42:36.178"
    assert fast.wave[0] == pytest.approx(5000.0)  # CUNIT1 = nm was read
    assert fast.meta["berv"] == 500.0 + PRIMARY_CARDS.index("ESO DRS BERV")


def craft_bad_files(d):
    adp = real_file("harps/adp/ADP.2014-09-16T11:04:45.123.fits")
    (d / "truncated.fits").write_bytes(adp.read_bytes()[:20_000])
    (d / "notfits.fits").write_text("this is a text file, not FITS\n")
    cols = fits.ColDefs([fits.Column(name="WAVE", format="10D", array=np.arange(5000.0, 5010.0)[None])])
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(d / "nocols.fits")
    img = fits.PrimaryHDU(np.full(100, np.nan))
    img.header.update(CRVAL1=5000.0, CDELT1=0.01, CRPIX1=1)
    img.writeto(d / "allnan.fits")
    red = fits.PrimaryHDU(np.ones(100))
    red.header.update(CRVAL1=8000.0, CDELT1=0.01, CRPIX1=1)
    red.writeto(d / "outside.fits")
    fits.PrimaryHDU(np.ones((2, 3, 4))).writeto(d / "cube.fits")
    e2ds = real_file("harps/e2ds/HARPS.2003-12-13T06:19:48.371_e2ds_A.fits")
    shutil.copy(e2ds, d / "lonely_e2ds_A.fits")  # its wave/blaze files are not beside it
    return {
        "truncated.fits": "truncated: its size, 20,000 bytes, is not a whole number of 2880-byte FITS blocks",
        "notfits.fits": "not a readable FITS",
        "nocols.fits": "lacks a FLUX column",
        "allnan.fits": "no finite flux value",
        "outside.fits": "outside the grid",
        "cube.fits": "unknown layout",
        "lonely_e2ds_A.fits": "calibration",
    }


def test_bad_files_are_rejected_with_reasons_and_good_ones_kept(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    bad = craft_bad_files(d)
    good = ["harps/s1d/HARPS_Sun_Ganymede_s1d.fits", "other/odusseas/UVES_Gl846.fits"]
    for rel in good:
        shutil.copy(real_file(rel), d / real_file(rel).name)
    with gzip.open(d / "gl581.fits.gz", "wb") as f:  # gzip-compressed input
        f.write(real_file("harps/s1d/HARPS.2010-09-18T23:42:36.178_s1d_A.fits").read_bytes())
    from spectra_lightning.cli import main

    rc = main(["ingest", str(d), "--output", str(tmp_path / "s.zarr"), "--workers", "2", "--quiet"])
    assert rc == 3  # done, something was rejected
    store = SpectraStore.open(tmp_path / "s.zarr")
    rejects = store.attrs["rejects"]
    assert {p.split("/")[-1] for p in rejects} == set(bad)
    for path, reason in rejects.items():
        assert bad[path.split("/")[-1]] in reason, (path, reason)
    assert sorted(store.meta["id"]) == sorted(["HARPS_Sun_Ganymede_s1d", "UVES_Gl846", "gl581"])


def test_rows_through_shared_memory_equal_rows_through_the_pipe(tmp_path, monkeypatch):
    d = tmp_path / "in"
    d.mkdir()
    craft_bad_files(d)  # rejects between good files leave unused slots in a task's group
    for rel in (
        "harps/s1d/HARPS_GJ3470_s1d.fits",
        "harps/norm_gbs/HARPS_Sun.fits",
        "other/odusseas/UVES_Gl846.fits",
        "harps/adp/ADP.2014-09-16T11:04:45.123.fits",
        "harps/norm_odusseas/HARPS_GJ163.fits",
    ):
        shutil.copy(real_file(rel), d / real_file(rel).name)
    from spectra_lightning.ingest import pool as ingest_module

    ingest([str(d)], str(tmp_path / "shared.zarr"), workers=2, progress=False)
    monkeypatch.setattr(ingest_module, "_shared_slots", lambda *a: None)  # as where processes are not forked
    ingest([str(d)], str(tmp_path / "piped.zarr"), workers=2, progress=False)
    shared, piped = SpectraStore.open(tmp_path / "shared.zarr"), SpectraStore.open(tmp_path / "piped.zarr")
    assert shared.n == piped.n == 5
    assert list(shared.meta["id"]) == list(piped.meta["id"])
    assert np.array_equal(shared.flux[:].view(np.uint16), piped.flux[:].view(np.uint16))


def test_kill_mid_ingest_then_rerun_gives_the_clean_result(tmp_path):
    files = harps_spectra()
    clean = tmp_path / "clean.zarr"
    ingest([str(f) for f in files], str(clean), workers=1, progress=False)  # the uninterrupted reference
    killed = tmp_path / "killed.zarr"
    workers = kill_when_rows(subprocess.Popen(ingest_cmd(files, killed, "--workers", "1", "--batch", "1")), killed, 3)
    if sys.platform.startswith("linux"):  # its reading processes follow it, not left waiting forever
        assert workers
        deadline = time.time() + 10
        while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
            time.sleep(0.05)
        assert not [w for w in workers if Path(f"/proc/{w}").exists()]
    partial = SpectraStore.open(killed)
    assert 0 < partial.n < SpectraStore.open(clean).n
    partial.read(np.arange(partial.n))  # whole spectra only, readable
    subprocess.run(ingest_cmd(files, killed, "--workers", "2"), check=True)
    a, b = SpectraStore.open(clean), SpectraStore.open(killed)
    assert list(a.meta["id"]) == list(b.meta["id"])
    np.testing.assert_array_equal(a.read(np.arange(a.n)), b.read(np.arange(b.n)))
    for k in a.meta:
        np.testing.assert_array_equal(a.meta[k], b.meta[k])
    # idempotent: a third run adds nothing
    assert ingest([str(f) for f in files], str(killed), workers=1, progress=False)["ingested"] == 0
    assert SpectraStore.open(killed).n == a.n


def test_labels_are_joined_and_unmatched_rows_reported(tmp_path):
    store, summary = one(
        tmp_path, real_file("harps/s1d/HARPS.2010-09-18T23:42:36.178_s1d_A.fits"), labels=str(REAL / "labels.csv")
    )
    assert store.meta["teff_K"][0] == 3203.0 and store.meta["rv_kms"][0] == pytest.approx(-9.199)
    assert len(summary["unmatched_labels"]) == 24


def test_workers_below_one_is_a_usage_error(tmp_path, capsys):
    from spectra_lightning.ingest.command import main

    with pytest.raises(SystemExit) as e:
        main([str(tmp_path), "--output", str(tmp_path / "s.zarr"), "--workers", "0"])
    assert e.value.code == 2
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists()


def test_broken_symbolic_links_are_rejects_with_their_reason(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(real_file("harps/s1d/HARPS_GJ3470_s1d.fits"), d / "HARPS_GJ3470_s1d.fits")
    (d / "loop_a.fits").symlink_to("loop_b.fits")
    (d / "loop_b.fits").symlink_to("loop_a.fits")
    (d / "dangling.fits").symlink_to("nowhere.fits")
    (d / "up").symlink_to("..")  # a directory link back up: not followed, no endless walk
    from spectra_lightning.cli import main

    out = tmp_path / "s.zarr"
    assert main(["ingest", str(d), "--output", str(out), "--workers", "1", "--quiet"]) == 3
    printed = capsys.readouterr().out
    rejects = SpectraStore.open(out).attrs["rejects"]
    assert rejects[str(d / "loop_a.fits")] == "symbolic link loop"
    assert rejects[str(d / "dangling.fits")].startswith("dangling symbolic link (its target nowhere.fits")
    assert "3 rejected" in printed and list(SpectraStore.open(out).meta["id"]) == ["HARPS_GJ3470_s1d"]
    # given explicitly, a loop is one reject, not the end of the run
    s = ingest(
        [str(d / "loop_a.fits"), str(d / "HARPS_GJ3470_s1d.fits")], str(tmp_path / "t.zarr"), workers=1, progress=False
    )
    assert s["ingested"] == 1 and s["rejected"] == 1 and s["rejects"] == {str(d / "loop_a.fits"): "symbolic link loop"}


def test_a_rerun_counts_label_rows_matched_by_earlier_runs(tmp_path):
    files = [
        real_file("harps/s1d/HARPS.2010-09-18T23:42:36.178_s1d_A.fits"),
        real_file("harps/s1d/HARPS_GJ3470_s1d.fits"),
    ]
    out = tmp_path / "s.zarr"
    first = ingest([str(f) for f in files], str(out), workers=1, progress=False, labels=str(REAL / "labels.csv"))
    again = ingest([str(f) for f in files], str(out), workers=1, progress=False, labels=str(REAL / "labels.csv"))
    assert again["ingested"] == 0 and again["already_present"] == 2
    assert again["unmatched_labels"] == first["unmatched_labels"] and len(first["unmatched_labels"]) == 23


def test_a_spike_beyond_float16_is_masked_and_counted_not_stored_as_inf(tmp_path):
    src = real_file("harps/s1d/HARPS_GJ3470_s1d.fits")
    with fits.open(src) as h:
        data = h[0].data.astype(np.float64) / np.nanmedian(h[0].data) * 2.0  # a faint spectrum: median 2 adu
        data[5000:5003] = 5e5  # a cosmic-ray hit: 250,000x the median, beyond float16's 65,504
        header = h[0].header.copy()
    path = tmp_path / "faint_s1d_A.fits"
    fits.PrimaryHDU(data, header).writeto(path)
    store, summary = one(tmp_path, path)
    row = store.read([0])[0]
    assert summary["ingested"] == 1 and not np.isinf(row).any()
    assert store.meta["n_masked_range"][0] == 3 and store.meta["low_flux"][0] == 1
    wave = header["CRVAL1"] + header["CDELT1"] * (5000 + 1 - header["CRPIX1"])
    assert np.isnan(row[int(round(HARPS.index_of(wave)))])


def test_a_second_writer_is_refused_while_the_first_writes(tmp_path, capsys):
    from spectra_lightning.cli import main

    files = [real_file("harps/s1d/HARPS_GJ3470_s1d.fits"), real_file("harps/s1d/HARPS_Sun_Ganymede_s1d.fits")]
    out = tmp_path / "s.zarr"
    ingest([str(files[0])], str(out), workers=1, progress=False)
    # a writer that holds the store (as a long ingest would) until it is killed
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from spectra_lightning.store.spectra_store import "
            "SpectraStore; s = SpectraStore.open(sys.argv[1], mode='a'); print('held', flush=True); "
            "time.sleep(120)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(["ingest", *map(str, files), "--output", str(out), "--workers", "1", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert "being written by another writer" in err and f"pid {holder.pid}" in err
        assert SpectraStore.open(out).n == 1  # nothing written by the refused writer
    finally:
        holder.kill()  # kill -9: its lock stays behind, naming a dead process
        holder.wait()
    assert (tmp_path / "s.zarr.lock").exists()
    ingest([str(f) for f in files], str(out), workers=1, progress=False)  # takes the dead writer's lock over
    from spectra_lightning.store.verify import verify

    result = verify(SpectraStore.open(out))
    assert result["ok"] and result["checked"] == SpectraStore.open(out).n == 2
    assert not (tmp_path / "s.zarr.lock").exists()


def test_adp_err_becomes_the_stores_inverse_variance_when_asked(tmp_path):
    """`--ivar yes` on the paper's grid: the ADP file's ERR column, as astropy reads it, lands as 1/ERR² × median²
    pixel for pixel (the ADP grid is the store's); the default on a linear grid keeps none."""
    path = real_file("harps/adp/ADP.2014-09-16T11:04:45.123.fits")
    ingest([str(path)], str(tmp_path / "s.zarr"), grid="harps", progress=False, ivar=True)
    store = SpectraStore.open(tmp_path / "s.zarr")
    with fits.open(path) as h:
        wave = h[1].data["WAVE"][0].astype(float)
        flux, err = h[1].data["FLUX"][0].astype(float), h[1].data["ERR"][0].astype(float)
    _, raw = expected_on_grid(wave, flux)
    median = np.nanmedian(raw[HARPS.valid])
    first = int(round(float(HARPS.index_of(wave[0]))))
    got = store.read_ivar([0])[0][first : first + len(err)]
    inside = HARPS.valid[first : first + len(err)] & (err > 0)
    np.testing.assert_allclose(got[inside], median**2 / err[inside] ** 2, rtol=1e-5)
    assert (got[~inside] == 0).all()
    ingest([str(path)], str(tmp_path / "plain.zarr"), grid="harps", progress=False)
    assert SpectraStore.open(tmp_path / "plain.zarr").ivar is None


def test_reading_an_archive_file_parses_only_the_cards_it_needs(monkeypatch):
    """The reader's speed comes from parsing ~23 of an ESO header's thousands of cards; any look at the primary
    HDU's own header (its name, HDUList's EXTEND check) parses all of them. Every HARPS 1-D file is read with no
    header parse longer than a data extension's."""
    from spectra_lightning.ingest.readers import read

    files = [p for p in harps_spectra() if "e2ds" not in str(p)]  # e2ds reads its calibration files whole
    parsed: list[int] = []
    original = fits.Header.fromstring.__func__

    def counting(cls, data, sep=""):
        parsed.append(len(data) // 80 if isinstance(data, str) else 0)
        return original(cls, data, sep)

    monkeypatch.setattr(fits.Header, "fromstring", classmethod(counting))
    large = [(path, len(fits.getheader(path, 0))) for path in files]
    large = [(path, full) for path, full in large if full > 300]  # the ESO products (the normalised ones are small)
    assert len(large) >= 3
    for path, full in large:
        parsed.clear()
        read(path)
        assert max(parsed) < full / 3, (path.name, full, parsed)
