"""Damaged stores: every reader notices (one line naming the store, array, chunk and rows); verify lists it all."""

import json
import shutil
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
import zarr

from spectra_lightning.cli import main
from spectra_lightning.cli.training import one_line_error
from spectra_lightning.data_modules.streaming import BlockStream
from spectra_lightning.ingest.synth import SynthSpec, synthesize
from spectra_lightning.store import DamagedStoreError, SpectraStore
from spectra_lightning.store.verify import verify

from helpers import tiny_config


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """64 spectra on the tiny grid in 4 flux chunks of 16 rows."""
    path = tmp_path_factory.mktemp("damage") / "clean.zarr"
    synthesize(str(path), SynthSpec(n=64, seed=5, grid="tiny"), progress=False)
    return path


@pytest.fixture
def store(clean, tmp_path):
    path = tmp_path / "s.zarr"
    shutil.copytree(clean, path)
    return path


def foreign_rows(path):
    """Rows 16-31 overwritten behind the store's back (decodable, but not the committed spectra)."""
    raw = zarr.open_group(str(path), mode="r+")
    raw["flux"][16:32] = raw["flux"][0:16]


def flip_header(path, chunk="flux/c/1/0"):
    f = path / chunk
    data = bytearray(f.read_bytes())
    data[:8] = bytes(b ^ 0xFF for b in data[:8])
    f.write_bytes(bytes(data))


def truncate(path, chunk="flux/c/2/0"):
    f = path / chunk
    # an interrupted write that left less than blosc's 16-byte header: cut to a third, a chunk may still "decode"
    # by reading past its end, which made this test flaky
    f.write_bytes(f.read_bytes()[:10])


def test_a_clean_store_reads_and_verifies(store):
    s = SpectraStore.open(store)
    assert s.read(np.arange(64)).shape == (64, s.grid.length)
    assert verify(s)["ok"] and s.attrs["checksums"] is True


def test_foreign_flux_is_caught_on_read(store):
    foreign_rows(store)
    s = SpectraStore.open(store)
    s.read([3])  # other chunks are fine
    with pytest.raises(DamagedStoreError, match=r"rows 20 of flux do not match their checksums"):
        s.read([20])
    with pytest.raises(DamagedStoreError, match=r"rows 16-31 of flux do not match"):
        s.read_block(16, 32)
    s.check_checksums = False  # the documented switch: no checksum check, but the rows still hold data
    assert np.isfinite(s.read([20])).any()


def test_a_lost_chunk_is_caught_even_without_checksums(store):
    (store / "flux/c/1/0").unlink()
    s = SpectraStore.open(store)
    s.check_checksums = False
    with pytest.raises(DamagedStoreError, match=r"rows 16-31 of flux hold no data although committed"):
        s.read(np.arange(64))


@pytest.mark.parametrize("damage", [flip_header, truncate])
def test_an_undecodable_chunk_names_the_chunk_and_rows(store, damage):
    damage(store)
    chunk, rows = ("c/1/0", "16-31") if damage is flip_header else ("c/2/0", "32-47")
    with pytest.raises(DamagedStoreError) as e:
        SpectraStore.open(store).read(np.arange(64))
    msg = str(e.value)
    assert "\n" not in msg and str(store) in msg and f"array flux, chunk {chunk} (rows {rows}) cannot be decoded" in msg


def test_the_streaming_reader_stops_on_damage_in_one_line_through_a_worker(store):
    flip_header(store)
    s = SpectraStore.open(store)
    stream = BlockStream(str(store), np.arange(64), s.labels(["teff"]), ["teff"], 8, shuffle=False)
    with pytest.raises(DamagedStoreError, match="chunk c/1/0"):
        list(stream)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=1)
    with pytest.raises(DamagedStoreError) as e:
        list(loader)
    assert "Original Traceback" in str(e.value)  # what torch re-raises ...
    line = one_line_error(e.value)  # ... and what the CLI prints of it
    assert "\n" not in line and line.startswith(f"{store}: array flux, chunk c/1/0 (rows 16-31) cannot be decoded")


def test_verify_lists_every_damaged_and_missing_chunk(store, capsys):
    flip_header(store, "flux/c/1/0")
    truncate(store, "flux/c/3/0")
    foreign_rows_at = zarr.open_group(str(store), mode="r+")
    foreign_rows_at["flux"][5] = foreign_rows_at["flux"][6]
    (store / "meta/teff/c/0").unlink()
    result = verify(SpectraStore.open(store))
    assert [(d["chunk"], d["rows"]) for d in result["damaged_chunks"]] == [("c/1/0", [16, 31]), ("c/3/0", [48, 63])]
    assert result["missing_chunks"] == [{"array": "meta/teff", "chunk": "c/0", "rows": [0, 63]}]
    assert result["mismatched"] == [{"row": 5, "id": SpectraStore.open(store).meta["id"][5]}]
    assert not result["ok"]
    assert main(["verify", str(store), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "flux: chunk c/1/0 (rows 16-31) cannot be decoded" in out and "flux: chunk c/3/0 (rows 48-63)" in out
    assert "meta/teff: chunk c/0 (rows 0-63) is missing" in out
    assert "INCONSISTENT: 1 missing chunks, 2 undecodable chunks, 1 rows with foreign flux" in out


def test_verify_does_not_take_lost_checksums_for_an_old_store(store, capsys):
    (store / "meta/crc32/c/0").unlink()
    result = verify(SpectraStore.open(store))
    assert result["missing_chunks"] == [{"array": "meta/crc32", "chunk": "c/0", "rows": [0, 63]}]
    assert result["missing_checksums"] == list(range(64)) and not result["ok"]
    assert main(["verify", str(store), "--quiet"]) == 1
    assert "rows 0-63 have no checksum in a store written with checksums" in capsys.readouterr().out


def test_a_column_added_later_has_every_chunk(tmp_path):
    from spectra_lightning.physics.grid import SpectralGrid

    grid = SpectralGrid.named("tiny")
    with SpectraStore.create(tmp_path / "s.zarr", grid, chunk_rows=1000) as s:
        # teff first appears at row 4500 (its rows 0-4095 are one chunk never given values); snr stops there
        for start, column in ((0, "snr"), (4500, "teff")):
            meta = {"id": np.array([f"r{i}" for i in range(start, start + 4500)]), column: np.full(4500, 1.0)}
            s.append(np.ones((4500, grid.length), np.float16), meta)
    result = verify(SpectraStore.open(tmp_path / "s.zarr"))
    assert result["missing_chunks"] == [] and result["ok"]


@pytest.fixture(scope="module")
def trained(clean, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    cfg = tiny_config(tmp, clean, logger=False, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    assert main(["fit", "--config", str(cfg)]) == 0
    return next((tmp / "run" / "checkpoints").glob("*.ckpt"))


def test_fit_and_encode_stop_in_one_line_on_a_lost_chunk(trained, store, tmp_path, capsys):
    (store / "flux/c/1/0").unlink()
    cfg = tiny_config(tmp_path, store, logger=False, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(store) in err and "of flux hold no data although committed" in err
    assert (
        main(["encode", "--ckpt", str(trained), "--store", str(store), "--output", str(tmp_path / "c.zarr"), "--quiet"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rows 16-31 of flux hold no data" in err and not (tmp_path / "c.zarr").exists()


def test_explore_answers_500_with_a_json_error_on_a_damaged_row(trained, store, tmp_path):
    from spectra_lightning.analysis.encode import encode
    from spectra_lightning.explorer.app import Explorer
    from spectra_lightning.explorer.server import make_server

    encode(trained, str(store), tmp_path / "codes.zarr", progress=False)
    flip_header(store)
    server = make_server(Explorer(trained, tmp_path / "codes.zarr", str(store)), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/spectrum?index=20"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url, timeout=30)
        assert e.value.code == 500
        assert "chunk c/1/0 (rows 16-31) cannot be decoded" in json.loads(e.value.read())["error"]
        with urllib.request.urlopen(url.replace("20", "3"), timeout=30) as r:  # the rest is served
            assert r.status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_streamed_fit_stops_in_one_line_on_an_undecodable_chunk(store, tmp_path, capsys):
    from helpers import streaming_config

    flip_header(store)
    cfg = streaming_config(tmp_path, store, max_epochs=1)  # one loader worker: the error crosses a process
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert f"{store}: array flux, chunk c/1/0 (rows 16-31) cannot be decoded" in err[0]
