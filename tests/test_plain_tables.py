"""Plain tables of one spectrum — CSV, ECSV, .npz — made in the test and read back as the arrays they hold; a
folder scan names what it skipped and what it did not read."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

from spectra_lightning.cli import main
from spectra_lightning.ingest.readers import NotASpectrum, read
from spectra_lightning.store import SpectraStore

WAVE = np.arange(5150.0, 5400.0, 0.25)
FLUX = 1.0 + 0.3 * np.sin(WAVE / 3.0)
SIGMA = np.full(WAVE.size, 0.05)


def test_csv_ecsv_and_npz_read_as_the_arrays_they_hold(tmp_path):
    Table({"Wavelength": WAVE, "flux": FLUX, "error": SIGMA}).write(tmp_path / "a.csv")
    nm = Table({"wave": WAVE / 10 * u.nm, "flux": FLUX, "ivar": SIGMA**-2}, meta={"medium": "vacuum", "teff": 5800.0})
    nm.write(tmp_path / "b.ecsv")
    np.savez(tmp_path / "c.npz", loglam=np.log10(WAVE), flux=FLUX.astype(np.float32), teff=np.float64(6100.0))
    (a,) = read(tmp_path / "a.csv")
    np.testing.assert_array_equal(a.wave, WAVE)
    np.testing.assert_array_equal(a.flux, FLUX)
    np.testing.assert_allclose(a.ivar, SIGMA**-2)
    assert a.medium == "air" and a.meta["id"] == "a" and a.product == "table"
    (b,) = read(tmp_path / "b.ecsv")
    np.testing.assert_allclose(b.wave, WAVE, rtol=1e-12)  # nm -> Å by the column's unit
    assert b.medium == "vacuum" and b.meta["teff"] == 5800.0
    (c,) = read(tmp_path / "c.npz")
    np.testing.assert_allclose(c.wave, WAVE, rtol=1e-12)
    assert c.flux.dtype == np.float32 and c.ivar is None and c.meta["teff"] == 6100.0


def test_a_table_without_wavelength_and_flux_is_skipped_with_its_columns(tmp_path):
    Table({"file": ["x.fits"], "teff": [5000.0]}).write(tmp_path / "labels.csv")
    with pytest.raises(NotASpectrum, match="without wavelength and flux columns .*file, teff"):
        read(tmp_path / "labels.csv")


def test_a_folder_scan_says_what_it_skipped_and_what_it_did_not_read(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    Table({"wave": WAVE, "flux": FLUX}).write(d / "star.csv")
    Table({"file": ["star.csv"], "teff": [5000.0]}).write(d / "labels.csv")
    (d / "README.md").write_text("notes")
    out = tmp_path / "s.zarr"
    assert main(["ingest", str(d), "--grid", "tiny", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    text = captured.out
    # not a terminal (a batch job's log): a line per tenth of the work, not a bar's carriage returns
    assert "\r" not in captured.err and "ingest: 2/2 files (100 %) in " in captured.err
    assert "1 skipped" in text and "skipped " + str(d / "labels.csv") in text
    assert f"not read {d / 'README.md'}: not a spectrum file by its name (.md)" in text
    store = SpectraStore.open(out)
    assert list(store.meta["id"]) == ["star"] and store.n == 1
