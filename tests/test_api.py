"""The Python front door (``import spectra_lightning as sl``) against the CLI: encoding arrays through the API gives
the codes that ``ingest`` + ``encode`` give for the same spectra; an exported model carries its card and loads by
path or URL with its SHA-256 checked; ``SpectraStore.from_arrays`` stores what ``ingest`` stores."""

from __future__ import annotations

import functools
import http.server
import json
import runpy
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

import spectra_lightning as sl
from spectra_lightning.api import sha256_of
from spectra_lightning.cli import main
from spectra_lightning.model.checkpoint_file import CheckpointError
from spectra_lightning.store import SpectraStore

from helpers import REPO, linear_fits, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_store):
    """A one-epoch fit of the 4-node VAE with a test split (its report names the informative nodes)."""
    tmp = tmp_path_factory.mktemp("api")
    data = {"val_fraction": 0.25, "test_fraction": 0.25}
    metrics = {"class_path": "spectra_lightning.callbacks.LatentMetrics", "init_args": {"figures_every_n_epochs": 0}}
    config = tiny_config(tmp, tiny_store, data=data, max_epochs=1, logger=False, callbacks=[metrics])
    assert main(["fit", "--config", str(config)]) == 0
    return tmp / "run"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    """Three 1-D FITS spectra with a linear WCS (one sampled every 0.37 Å, so resampling does work)."""
    tmp = tmp_path_factory.mktemp("fits")
    out = [linear_fits(tmp / f"s{k}.fits", seed=k) for k in (1, 2)]
    return [*out, linear_fits(tmp / "s3.fits", seed=3, start=5160.0, step=0.37, n=600)]


def ckpt_of(run: Path) -> Path:
    (ckpt,) = (run / "checkpoints").glob("*.ckpt")  # Lightning's own: the last epoch's
    return ckpt


def arrays_of(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The wavelengths and flux of a file as astropy reads them (CRVAL1 + (i + 1 − CRPIX1)·CDELT1)."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        h, flux = hdul[0].header, np.asarray(hdul[0].data)
    return h["CRVAL1"] + (np.arange(flux.size) + 1 - h["CRPIX1"]) * h["CDELT1"], flux


def test_encoding_arrays_equals_ingest_then_encode_on_the_cli(run, files, tmp_path):
    store, codes = tmp_path / "s.zarr", tmp_path / "codes.zarr"
    assert main(["ingest", *map(str, files), "--grid", "tiny", "--output", str(store), "--quiet"]) == 0
    ckpt = ckpt_of(run)
    assert main(["encode", "--ckpt", str(ckpt), "--store", str(store), "--output", str(codes), "--quiet"]) == 0
    cli = zarr.open_group(str(codes), mode="r")
    by_id = dict(zip([str(i) for i in cli["id"][:]], cli["mu"][:]))

    model = sl.load(ckpt)
    assert model.grid == SpectraStore.open(store).grid and model.latent_dim == 4
    report = json.loads((run / "report.json").read_text())
    for path in files:
        wave, flux = arrays_of(path)
        out = model.encode(wave, flux)
        assert out.mu.shape == (1, 4) and out.sigma.shape == (1, 4) and np.all(out.sigma > 0)
        np.testing.assert_allclose(out.mu[0], by_id[path.stem], rtol=1e-5, atol=1e-6)
        assert out.informative == report["mad"]["informative"]
    # several at once, one shared wavelength axis; decode gives spectra on the grid
    wave, f1 = arrays_of(files[0])
    both = model.encode(wave, np.stack([f1, arrays_of(files[1])[1]]))
    np.testing.assert_allclose(both.mu, np.stack([by_id["s1"], by_id["s2"]]), rtol=1e-5, atol=1e-6)
    assert model.decode(both.mu).shape == (2, model.grid.length) and model.decode(both.mu[0]).shape == (512,)


def test_a_spectrum_off_the_grid_or_malformed_is_one_line_naming_it(run):
    model = sl.load(ckpt_of(run))
    wave = np.linspace(7000, 7100, 300)
    with pytest.raises(ValueError, match=r"spectrum spectrum0: .*outside the grid 5150–5405"):
        model.encode(wave, np.ones(300))
    with pytest.raises(ValueError, match=r"wave \(300,\) and flux \(299,\)"):
        model.encode(wave, np.ones(299))


def test_an_exported_model_carries_its_card_and_checks_its_sha256(run, tmp_path, capsys):
    out = tmp_path / "shared" / "tiny.ckpt"
    assert main(["export", str(run), "--output", str(out)]) == 0
    card = (tmp_path / "shared" / "tiny.md").read_text()
    digest = sha256_of(out)
    assert f"SHA-256 `{digest}`" in card and "informative" in card and '"wave_min": 5150.0' in card
    report = json.loads((run / "report.json").read_text())
    model = sl.load(out, sha256=digest)
    assert model.card["informative"] == report["mad"]["informative"] == model.informative
    assert "optimizer_states" not in __import__("torch").load(out, weights_only=True)  # a slim file
    # the same weights as the run's checkpoint
    wave, flux = np.arange(5150.0, 5405.0, 0.5), 1 + 0.1 * np.sin(np.arange(510) / 5)
    np.testing.assert_array_equal(model.encode(wave, flux).mu, sl.load(ckpt_of(run)).encode(wave, flux).mu)
    with pytest.raises(CheckpointError, match="SHA-256 is .* not the expected 00ff"):
        sl.load(out, sha256="00ff")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "nope"), "--output", str(tmp_path / "x.ckpt")]) == 2
    assert "no checkpoint in" in capsys.readouterr().err


def test_a_model_loads_from_a_url_once_into_the_cache(run, tmp_path, monkeypatch):
    served = tmp_path / "www"
    served.mkdir()
    assert main(["export", str(run), "--output", str(served / "m.ckpt")]) == 0
    digest = sha256_of(served / "m.ckpt")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/m.ckpt"
    monkeypatch.setenv("SPECTRA_LIGHTNING_CACHE", str(tmp_path / "cache"))
    try:
        model = sl.load(url, sha256=digest)
        cached = list((tmp_path / "cache" / "models").iterdir())
        assert [p.name for p in cached] == [f"{digest}-m.ckpt"] and model.informative is not None
        (served / "m.ckpt").unlink()  # gone from the server: the cache serves it
        assert sl.load(url, sha256=digest).latent_dim == 4
        with pytest.raises(CheckpointError, match="cannot download .*404"):
            sl.load(url.replace("m.ckpt", "other.ckpt"))
    finally:
        server.shutdown()
    (served / "bad.ckpt").write_bytes(b"not a model")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(CheckpointError, match="download's SHA-256 .* not the expected"):
            sl.load(f"http://127.0.0.1:{server.server_address[1]}/bad.ckpt", sha256=digest)
        assert not any("bad.ckpt" in p.name for p in (tmp_path / "cache" / "models").iterdir())  # deleted
    finally:
        server.shutdown()


def test_from_arrays_stores_what_ingest_stores(files, tmp_path):
    store = tmp_path / "files.zarr"
    assert main(["ingest", *map(str, files), "--grid", "tiny", "--output", str(store), "--quiet"]) == 0
    ingested = SpectraStore.open(store)
    pairs = [arrays_of(p) for p in files]
    teff = np.array([5000.0, 5500.0, 6000.0])
    mem = sl.SpectraStore.from_arrays(
        [w for w, _ in pairs][0], np.stack([f for _, f in pairs[:2]]), grid="tiny", labels={"teff": teff[:2]}
    )
    assert mem.path.startswith("memory://") and mem.n == 2 and mem.grid == ingested.grid
    order = list(ingested.meta["id"])
    np.testing.assert_array_equal(mem.read(np.arange(2)), ingested.read([order.index("s1"), order.index("s2")]))
    np.testing.assert_array_equal(mem.meta["teff"], teff[:2])
    assert list(mem.meta["id"]) == ["spectrum0", "spectrum1"]
    # on disk, one wavelength row per spectrum, ivar kept, and a grid inferred from the spectra
    wave = np.stack([np.linspace(5000, 5100, 400)] * 3)
    flux = 1 + 0.1 * np.random.default_rng(0).standard_normal((3, 400))
    disk = sl.SpectraStore.from_arrays(wave, flux, ivar=np.full((3, 400), 4.0), path=tmp_path / "a.zarr")
    assert disk.grid.wave_min == 5000 and disk.grid.length % 256 == 0 and disk.ivar is not None
    assert SpectraStore.open(tmp_path / "a.zarr").n == 3


def test_the_api_example_runs(run, tmp_path, capsys, monkeypatch):
    """docs/examples/encode_spectra.py, as docs/api.md shows it, on a run's checkpoint."""
    monkeypatch.setattr(sys, "argv", ["encode_spectra.py", str(ckpt_of(run)), str(tmp_path)])
    runpy.run_path(str(REPO / "docs" / "examples" / "encode_spectra.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "informative nodes" in out and (tmp_path / "decoded.png").stat().st_size > 1000


def test_the_python_blocks_of_docs_api_md_run(run, capsys):
    import re

    text = (REPO / "docs" / "api.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) >= 2
    namespace = {"checkpoint": str(ckpt_of(run))}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    assert "Model(4 nodes" in capsys.readouterr().out and namespace["store"].n == 2
