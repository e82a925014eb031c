"""Ingest never loses or double-counts a spectrum: identity by content, one bad file is one reject, nothing to
ingest leaves no store, mostly masked or mangled survey spectra are refused or warned about, never silently kept;
and the exit codes say which of these happened."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from spectra_lightning.cli import main
from spectra_lightning.ingest.command import EXIT_ERROR, EXIT_OK, EXIT_REJECTS
from spectra_lightning.ingest.pipeline import ingest
from spectra_lightning.store import SpectraStore
from spectra_lightning.store.verify import verify

from helpers import TESTS, linear_fits

LEGACY = TESTS / "data" / "store_0.4_two_spectra.zarr"  # made by 0.4's ingest from linear_fits seeds 1 and 2


def run(inputs, out, *extra, capsys=None):
    rc = main(["ingest", *map(str, inputs), "--output", str(out), "--workers", "1", "--quiet", *extra])
    return rc, (capsys.readouterr() if capsys is not None else None)


def sdss_file(
    path: Path, n: int = 4617, bad: int = 0, ivar: bool = True, scale: float = 1.0, at=(150.0, 2.0), seed: int = 0
) -> Path:
    """An SDSS ``spec`` file: a COADD table (flux, loglam, ivar, and_mask) and a SPECOBJ row (class, z, the plug
    position ``at``); the last ``bad`` pixels flagged in and_mask; ``seed`` varies the flux."""
    loglam = 3.5800 + 1e-4 * np.arange(n)
    flux = scale * (10 + np.sin(np.arange(n) / (30.0 + seed))).astype(np.float32)
    cols = [
        fits.Column(name="flux", format="E", array=flux),
        fits.Column(name="loglam", format="E", array=loglam.astype(np.float32)),
        fits.Column(name="and_mask", format="J", array=(np.arange(n) >= n - bad).astype(np.int32)),
    ]
    if ivar:
        cols.insert(2, fits.Column(name="ivar", format="E", array=np.full(n, 4.0 / scale**2, np.float32)))
    specobj = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="CLASS", format="6A", array=["QSO"]),
            fits.Column(name="Z", format="E", array=[2.1]),
            fits.Column(name="PLUG_RA", format="D", array=[at[0]]),
            fits.Column(name="PLUG_DEC", format="D", array=[at[1]]),
        ]
    )
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="COADD"), specobj]).writeto(path)
    return path


def test_the_same_file_name_in_two_folders_is_two_spectra(tmp_path, capsys):
    """``ingest a/ b/`` with two different spectra named ``spectrum.fits`` stored one and lost the other."""
    linear_fits(tmp_path / "a" / "spectrum.fits", 1)
    linear_fits(tmp_path / "b" / "spectrum.fits", 2)
    out = tmp_path / "s.zarr"
    rc, printed = run([tmp_path / "a", tmp_path / "b"], out, "--grid", "tiny", capsys=capsys)
    assert rc == EXIT_OK
    store = SpectraStore.open(out)
    ids = list(store.meta["id"])
    assert store.n == 2 and ids[0] == "spectrum" and ids[1].startswith("spectrum-") and ids[1] != ids[0]
    assert f"renamed {tmp_path / 'b' / 'spectrum.fits'}: stored as {ids[1]}" in printed.out
    assert not np.array_equal(store.read([0]), store.read([1]), equal_nan=True)
    # a true repeat (the same bytes again, in a rerun) stays "already present"
    rc, printed = run([tmp_path / "a", tmp_path / "b"], out, "--grid", "tiny", capsys=capsys)
    assert rc == EXIT_OK and "ingested 0 spectra" in printed.out and "2 already present" in printed.out
    assert SpectraStore.open(out).n == 2


def test_the_same_spectrum_under_two_names_is_stored_once(tmp_path, capsys):
    """One spectrum copied under another name, and compressed under a third: stored once, the others listed."""
    first = linear_fits(tmp_path / "in" / "hd1.fits", 3)
    shutil.copy(first, tmp_path / "in" / "hd1_copy.fits")
    with gzip.open(tmp_path / "in" / "zz_hd1.fits.gz", "wb") as f:
        f.write(first.read_bytes())
    linear_fits(tmp_path / "in" / "other.fits", 4)
    out = tmp_path / "s.zarr"
    rc, printed = run([tmp_path / "in"], out, "--grid", "tiny", capsys=capsys)
    assert rc == EXIT_OK
    store = SpectraStore.open(out)
    assert sorted(store.meta["id"]) == ["hd1", "other"]
    assert "2 duplicates of another file's spectrum" in printed.out
    for name in ("hd1_copy.fits", "zz_hd1.fits.gz"):
        assert f"duplicate {tmp_path / 'in' / name}: the same spectrum as hd1, stored once" in printed.out
    summary = ingest([str(tmp_path / "in")], str(out), grid="tiny", progress=False)  # a rerun: still once
    assert summary["ingested"] == 0 and summary["already_present"] == 2 and summary["duplicates"] == 2


def test_a_store_ingested_before_content_hashes_keeps_its_ids(tmp_path):
    """A store made by 0.4's ingest has no content hashes: its spectra ingested again are already present (told
    by their placed rows' checksums), a different spectrum under one of its names is added, renamed."""
    out = tmp_path / "legacy.zarr"
    shutil.copytree(LEGACY, out)
    linear_fits(tmp_path / "in" / "one.fits", 1)
    linear_fits(tmp_path / "in" / "two.fits", 2)
    linear_fits(tmp_path / "in" / "three.fits", 3)
    linear_fits(tmp_path / "moved" / "one.fits", 5)  # another spectrum with a stored spectrum's name
    summary = ingest([str(tmp_path / "in"), str(tmp_path / "moved")], str(out), grid="tiny", progress=False)
    assert summary["already_present"] == 2 and summary["ingested"] == 2 and summary["rejects"] == {}
    store = SpectraStore.open(out)
    ids = list(store.meta["id"])
    assert ids[:3] == ["one", "two", "three"] and ids[3].startswith("one-")
    assert list(store.meta["content_hash"][:2]) == ["", ""] and all(store.meta["content_hash"][2:])
    assert verify(store)["ok"]


def manga_file(path: Path, short_wave: int = 0) -> Path:
    """A MaNGA-like file of two spaxel rows; its WAVE ``short_wave`` pixels shorter than FLUX (malformed)."""
    n = 400
    wave = 10 ** (3.72 + 1e-4 * np.arange(n - short_wave))
    flux = (5 + np.sin(np.arange(n)[None, :] / np.array([[9.0], [11.0]]))).astype(np.float32)
    hdus = [
        fits.PrimaryHDU(),
        fits.ImageHDU(wave, name="WAVE"),
        fits.ImageHDU(flux, name="FLUX"),
        fits.ImageHDU(np.ones_like(flux), name="IVAR"),
        fits.ImageHDU(np.zeros(flux.shape, np.int32), name="MASK"),
        fits.ImageHDU(np.zeros(2), name="Z"),
    ]
    fits.HDUList(hdus).writeto(path)
    return path


def test_one_malformed_file_is_one_reject_and_the_rest_goes_in(tmp_path, capsys):
    """A MaNGA file whose WAVE is 10 px shorter than FLUX stopped the whole ingest with an empty store."""
    d = tmp_path / "in"
    d.mkdir()
    bad = manga_file(d / "broken_manga.fits", short_wave=10)
    manga_file(d / "good_manga.fits")
    rc, printed = run([d], tmp_path / "s.zarr", "--grid", "5200:5900:1.0:704", capsys=capsys)
    assert rc == EXIT_REJECTS
    store = SpectraStore.open(tmp_path / "s.zarr")
    assert list(store.meta["id"]) == ["good_manga_0", "good_manga_1"]
    (reason,) = [r for p, r in store.attrs["rejects"].items() if p.startswith(str(bad))]
    assert "arrays of unequal length" in reason and "(390,)" in reason and "(400,)" in reason
    assert f"rejected {bad}" in printed.out


def test_nothing_to_ingest_is_an_error_and_leaves_no_store(tmp_path, tiny_store, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["ingest", str(tmp_path / "empty"), "--output", str(tmp_path / "e.zarr"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == EXIT_ERROR and "nothing to ingest: no spectrum file" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "e.zarr").exists()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.fits").write_text("not FITS")
    (junk / "b.fits.gz").write_bytes(gzip.compress(b"SIMPLE  = " + b" " * 3000)[:40])  # cut short
    rc, printed = run([junk], tmp_path / "j.zarr", capsys=capsys)
    assert rc == EXIT_ERROR and "no input could be ingested: no store written" in printed.err
    assert "rejected" in printed.out and "truncated: its gzip stream ends" in printed.out
    assert not (tmp_path / "j.zarr").exists()
    # fit on a store that holds no spectrum: one line, not a StopIteration traceback
    empty = SpectraStore.create(tmp_path / "zero.zarr", SpectraStore.open(tiny_store).grid)
    empty.close()
    from helpers import tiny_config

    cfg = tiny_config(tmp_path, tmp_path / "zero.zarr", logger=False, max_epochs=1)
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "zero.zarr" in err[0] and "holds no spectrum" in err[0], err


def test_mostly_masked_spectra_are_rejected_with_what_is_wrong(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    sdss_file(d / "spec-quasar.fits", bad=4605)  # 12 usable pixels of 4,617
    sdss_file(d / "spec-fine.fits", bad=100)
    allzero = sdss_file(d / "spec-noivar.fits")
    with fits.open(allzero, mode="update") as h:
        h[1].data["ivar"][:] = 0
    out = tmp_path / "s.zarr"
    rc, printed = run([d], out, "--grid", "sdss", capsys=capsys)
    assert rc == EXIT_REJECTS
    rejects = SpectraStore.open(out).attrs["rejects"]
    assert "only 12 of 4,617 pixels usable (0.3%; --min-usable is 20%)" in rejects[f"{d / 'spec-quasar.fits'}[0]"]
    assert rejects[f"{d / 'spec-noivar.fits'}[0]"] == "no pixel with inverse variance > 0"
    assert list(SpectraStore.open(out).meta["id"]) == ["spec-fine"]
    # the threshold is the user's to set
    rc, _ = run([d / "spec-quasar.fits"], tmp_path / "t.zarr", "--grid", "sdss", "--min-usable", "0", capsys=capsys)
    assert rc == EXIT_OK


def desi_file(path: Path, r_step: float = 0.8) -> Path:
    hdus = [fits.PrimaryHDU()]
    for camera, start, n, step in (
        ("B", 3600.0, 300, 0.8),
        ("R", 3600.0 + 0.8 * 280, 300, r_step),
        ("Z", 3960.0, 200, 0.8),
    ):
        hdus.append(fits.ImageHDU(start + step * np.arange(n), name=f"{camera}_WAVELENGTH"))
        hdus.append(fits.ImageHDU(np.ones((1, n), np.float32), name=f"{camera}_FLUX"))
        hdus.append(fits.ImageHDU(np.ones((1, n), np.float32), name=f"{camera}_IVAR"))
    hdus.append(fits.BinTableHDU.from_columns([fits.Column(name="TARGETID", format="K", array=[7])], name="FIBERMAP"))
    fits.HDUList(hdus).writeto(path)
    return path


def test_mangled_survey_files_are_refused_or_warned_about_never_silent(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    sdss_file(d / "spec-noivarcol.fits", ivar=False)
    desi_file(d / "coadd-offstep.fits", r_step=0.6)
    desi_file(d / "coadd-fine.fits")
    placeholder = sdss_file(d / "spec-placeholder.fits", scale=1.0)
    with fits.open(placeholder, mode="update") as h:
        h[1].data["ivar"][:7] = 1e30
    out = tmp_path / "s.zarr"
    rc, printed = run([d], out, "--grid", "log:3600:4200:1e-4", capsys=capsys)
    assert rc == EXIT_REJECTS
    store = SpectraStore.open(out)
    rejects = store.attrs["rejects"]
    assert "without its ivar column" in rejects[str(d / "spec-noivarcol.fits")]
    assert "DESI camera R" in rejects[str(d / "coadd-offstep.fits")]
    assert sorted(store.meta["id"]) == ["coadd-fine_7", "spec-placeholder"]
    assert "7 pixel(s) with an implausible inverse variance" in printed.out
    i = list(store.meta["id"]).index("spec-placeholder")
    assert np.all(store.read_ivar([i])[0] < 1e6)  # nothing like 1e30 stored
    # a survey spectrum on the paper's 0.01 Å grid: ingested, with both problems said, and counted
    rc, printed = run([d / "spec-placeholder.fits"], tmp_path / "h.zarr", capsys=capsys)
    assert rc == EXIT_OK and "1 with warnings" in printed.out
    assert "the grid oversamples it" in printed.out and "its inverse variance is not kept" in printed.out


def test_the_exit_codes_are_documented(capsys):
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    text = capsys.readouterr().out
    for code, meaning in (
        (EXIT_OK, "done: every input"),
        (EXIT_REJECTS, "done, some inputs rejected"),
        (EXIT_ERROR, "nothing"),
    ):
        assert f"  {code}  {meaning}" in text


def test_repeat_spectra_of_one_object_land_in_one_split(tmp_path):
    """Spectra of one target on other plates (another plate-mjd-fiber, the same plug position to 0.3″) are one
    object: the split never puts one in training and another in the test set."""
    from spectra_lightning.data_modules.split import assign_splits

    d = tmp_path / "in"
    d.mkdir()
    for star in range(40):
        at = (10.0 + star * 0.01, -5.0 + star * 0.02)
        for epoch in range(2):
            moved = (at[0] + epoch * 0.3 / 3600, at[1])  # 0.3″ apart, on either side of nothing
            sdss_file(d / f"spec-{1000 + epoch}-5000{epoch}-{star:04d}.fits", at=moved, seed=star * 2 + epoch)
    summary = ingest([str(d)], str(tmp_path / "s.zarr"), grid="sdss", progress=False)
    assert summary["ingested"] == 80
    meta = SpectraStore.open(tmp_path / "s.zarr").meta
    assert len(set(meta["object"])) == 40
    splits = assign_splits(meta, 0.25, 0.25, seed=0)
    where = {}
    for name, rows in splits.items():
        for obj in meta["object"][rows]:
            where.setdefault(obj, set()).add(name)
    assert all(len(s) == 1 for s in where.values()) and len({n for s in where.values() for n in s}) == 3
