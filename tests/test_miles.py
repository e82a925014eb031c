"""Real spectra at scale: the MILES library (../shared/data/miles, skipped when absent) on its own grid,
explicit grids, normalised libraries, and the MILES recipe end to end on a subset."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr
from astropy.io import fits

from spectra_lightning.cli import main
from spectra_lightning.ingest.pipeline import ingest
from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.store import SpectraStore

from helpers import real_file

REPO = Path(__file__).resolve().parents[1]
MILES = REPO.parent / "shared" / "data" / "miles"
SUBSET = 120  # stars for the short fit: enough for a split by star and a report


def miles_files(n=None):
    if not MILES.exists():
        pytest.skip(f"MILES spectra not available: {MILES} (needs ../shared beside the repo)")
    files = sorted(MILES.glob("MILES_*.fits"))
    return files[:n] if n else files


@pytest.fixture(scope="module")
def miles_store(tmp_path_factory):
    """The first SUBSET MILES stars ingested by the README's command."""
    tmp = tmp_path_factory.mktemp("miles")
    d = tmp / "miles"
    d.mkdir()
    for f in miles_files(SUBSET):
        (d / f.name).symlink_to(f)
    shutil.copy(MILES / "labels.csv", d / "labels.csv")
    rc = main(
        [
            "ingest",
            str(d),
            "--labels",
            str(d / "labels.csv"),
            "--grid",
            "miles",
            "--output",
            str(tmp / "miles.zarr"),
            "--workers",
            "2",
            "--quiet",
        ]
    )
    assert rc == 0
    return tmp / "miles.zarr"


def test_miles_ingest_joins_labels_and_flags_nothing(miles_store):
    store = SpectraStore.open(miles_store)
    m = store.meta
    assert store.n == SUBSET and store.grid == SpectralGrid.named("miles")
    assert not store.grid.mask_gap and store.grid.n_pixels == 4300
    labels = {r["file"].removesuffix(".fits"): r for r in __import__("csv").DictReader(open(MILES / "labels.csv"))}
    for i in range(store.n):  # every star got its own row of the table, and its name from it
        row = labels[m["id"][i]]
        assert m["object"][i] == row["object"]
        for col in ("teff", "logg", "feh"):
            assert (np.isnan(m[col][i]) and row[col] == "") or m[col][i] == pytest.approx(float(row[col]))
    # flux-calibrated, normalised to ~1: not detector counts, so never "low flux"
    assert m["counts"].sum() == 0 and m["low_flux"].sum() == 0 and (m["raw_median"] < 50).all()
    # a file read back equals astropy's own read, on the grid (0.9 Å: a pure copy, then / median)
    with fits.open(MILES / f"{m['id'][5]}.fits") as h:
        flux = h[0].data.astype(float)
    g = store.grid
    got = store.read([5])[0][g.pad_left : g.pad_left + g.n_pixels]
    np.testing.assert_allclose(got, flux / np.median(flux), rtol=1e-3)


def test_the_paper_filter_keeps_normalised_spectra_and_drops_faint_counts(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for rel in (
        "harps/norm_gbs/HARPS_Sun.fits",
        "harps/norm_odusseas/HARPS_GJ163.fits",
        "harps/s1d/HARPS_GJ3470_s1d.fits",
    ):
        shutil.copy(real_file(rel), d / Path(rel).name)
    with fits.open(real_file("harps/s1d/HARPS_Sun_Ganymede_s1d.fits")) as h:  # the same product, 10 adu median
        fits.PrimaryHDU(h[0].data / np.nanmedian(h[0].data) * 10.0, h[0].header).writeto(d / "faint_s1d_A.fits")
    ingest([str(d)], str(tmp_path / "s.zarr"), workers=1, progress=False)
    m = SpectraStore.open(tmp_path / "s.zarr").meta
    flags = dict(zip(m["id"], zip(m["product"], m["counts"], m["low_flux"])))
    assert flags["HARPS_Sun"] == ("image1d", 0, 0) and flags["HARPS_GJ163"] == ("image1d", 0, 0)
    assert flags["HARPS_GJ3470_s1d"] == ("s1d", 1, 0) and flags["faint_s1d_A"] == ("s1d", 1, 1)
    from spectra_lightning.data_modules.streaming import apply_filters

    kept = apply_filters(m, np.arange(len(m["id"])), ["low_flux == 0"])
    assert sorted(m["id"][kept]) == ["HARPS_GJ163", "HARPS_GJ3470_s1d", "HARPS_Sun"]


def test_an_explicit_grid_and_a_bad_one(tmp_path, capsys):
    src = real_file("other/odusseas/UVES_Gl846.fits")
    out = tmp_path / "e.zarr"
    # 0.015 Å: coarser than the file's 0.01 Å, not 2x coarser, so linear interpolation (SpectralGrid.auto_method)
    assert (
        main(["ingest", str(src), "--grid", "5000:6000:0.015", "--output", str(out), "--workers", "1", "--quiet"]) == 0
    )
    store = SpectraStore.open(out)
    assert store.grid == SpectralGrid(5000.0, 6000.0, 0.015, 66667, mask_gap=False)
    with fits.open(src) as h:
        hdr, flux = h[0].header, h[0].data.astype(float)
    wave = hdr["CRVAL1"] + hdr["CDELT1"] * (np.arange(flux.size) + 1 - hdr.get("CRPIX1", 1.0))
    want = np.interp(store.grid.wavelength, wave, flux, left=np.nan, right=np.nan)
    got = store.read([0])[0]
    ok = np.isfinite(want) & np.isfinite(got)
    assert ok.sum() > 66_000
    np.testing.assert_allclose(got[ok], want[ok] / np.nanmedian(want), rtol=2e-3, atol=2e-3)
    for bad, reason in (
        ("5000:6000", "START:STOP:STEP[:LENGTH]"),
        ("6000:5000:0.1", "START < STOP"),
        ("5000:6000:0.1:100", "LENGTH 100 is shorter than its 10001"),
    ):
        assert main(["ingest", str(src), "--grid", bad, "--output", str(tmp_path / "bad.zarr"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ingest: error:") and f"grid '{bad}'" in err[0], err
        assert reason in err[0], err
        assert not (tmp_path / "bad.zarr").exists()


def test_the_mangadap_parameter_table_is_accepted_as_labels(tmp_path):
    files = miles_files(3)
    table = tmp_path / "MILES_params.db"  # the format sdss-mangadap ships: comments, NNNN Teff logg [Fe/H]
    table.write_text(
        "#MILES  Teff  log g   [Fe/H]\n#s????\n# - - - -\n"
        "  0001  5305   4.49    -0.75\n  0002  4167   0.95     0.02\n  0003 99999   9999    9999\n"
    )
    s = ingest(
        [str(f) for f in files], str(tmp_path / "s.zarr"), grid="miles", workers=1, progress=False, labels=str(table)
    )
    m = SpectraStore.open(tmp_path / "s.zarr").meta
    assert s["unmatched_labels"] == [] and list(m["teff"][:2]) == [5305.0, 4167.0]
    assert m["logg"][1] == pytest.approx(0.95) and np.isnan(m["teff"][2]) and np.isnan(m["feh"][2])


def test_the_miles_recipe_fits_a_subset_and_the_grid_flows_into_encode(miles_store, tmp_path, capsys):
    cfg = yaml.safe_load((REPO / "experiments/miles.yaml").read_text())
    cfg["trainer"].update(max_epochs=2, logger=False, enable_progress_bar=False, default_root_dir=str(tmp_path / "run"))
    (metrics,) = [c for c in cfg["trainer"]["callbacks"] if c["class_path"].endswith("LatentMetrics")]
    metrics["init_args"].update(figures_every_n_epochs=0, final_figures=False)
    path = tmp_path / "miles_short.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["fit", "--config", str(path), f"--data.init_args.store={miles_store}"]) == 0
    out = capsys.readouterr().out
    assert "informative" in out and (tmp_path / "run" / "report.json").exists()
    import json

    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert set(report["mi"]["ksg"]) == {"teff", "logg", "feh"}
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert (
        main(
            [
                "encode",
                "--ckpt",
                str(ckpt),
                "--store",
                str(miles_store),
                "--output",
                str(tmp_path / "c.zarr"),
                "--quiet",
            ]
        )
        == 0
    )
    codes = zarr.open_group(str(tmp_path / "c.zarr"), mode="r")
    assert codes["mu"].shape == (SUBSET, cfg["model"]["net"]["init_args"]["latent_dim"])
    assert SpectralGrid(**codes.attrs["grid"]) == SpectralGrid.named("miles")
    # a store of another grid is refused by this model in one line
    other = tmp_path / "q.zarr"
    from spectra_lightning.ingest.synth import SynthSpec, synthesize

    synthesize(str(other), SynthSpec(n=8, grid="quickstart"), progress=False)
    capsys.readouterr()
    assert (
        main(["encode", "--ckpt", str(ckpt), "--store", str(other), "--output", str(tmp_path / "d.zarr"), "--quiet"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not the one the model was trained on" in err[0]


def test_a_harps_file_on_the_miles_grid_is_masked_outside_its_coverage():
    g = SpectralGrid.named("miles")
    from spectra_lightning.ingest.placement import on_grid_row
    from spectra_lightning.ingest.readers import read

    spec = read(real_file("harps/adp/ADP.2014-09-16T11:04:45.123.fits"))[0]
    row, n, _ = on_grid_row(spec, g, "float32")
    w = g.wavelength
    inside = (w >= spec.wave.min()) & (w <= spec.wave.max()) & g.valid
    assert n == int(np.isfinite(row).sum()) and np.isfinite(row[inside]).mean() > 0.99
    assert not np.isfinite(row[~inside]).any()
