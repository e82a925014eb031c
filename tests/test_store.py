import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import zarr

from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.store import SpectraStore, StoreError
from spectra_lightning.store.lock import StoreLockedError
from spectra_lightning.store.verify import verify

GRID = SpectralGrid.named("tiny")


def rows(n, seed=0):
    f = np.random.default_rng(seed).random((n, GRID.length)).astype(np.float32)
    f[:, ~GRID.valid] = np.nan
    return f


def test_roundtrip_float16_chunked(tmp_path):
    s = SpectraStore.create(tmp_path / "s.zarr", GRID)
    s.append(rows(5), {"id": np.array([f"a{i}" for i in range(5)]), "teff": np.arange(5.0)})
    s.append(rows(3, 1), {"id": np.array(["b0", "b1", "b2"]), "teff": np.arange(3.0), "rv": np.ones(3)})
    s2 = SpectraStore.open(tmp_path / "s.zarr")
    assert s2.n == 8 and s2.grid == GRID
    assert s2.flux.dtype == np.float16 and s2.flux.chunks == (16, GRID.length)
    got = s2.read([6, 0])
    np.testing.assert_allclose(got[1], rows(5)[0], rtol=1e-3, equal_nan=True)
    np.testing.assert_allclose(got[0], rows(3, 1)[1], rtol=1e-3, equal_nan=True)
    assert list(s2.meta["id"]) == ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2"]
    assert np.isnan(s2.meta["rv"][:5]).all() and (s2.meta["rv"][5:] == 1).all()  # late column padded
    assert s2.group["meta/teff"].attrs["units"] == "K"
    labels = s2.labels(["teff", "missing"])
    assert labels.shape == (8, 2) and np.isnan(labels[:, 1]).all()


@pytest.mark.parametrize("codec", ["lz4", "zstd", "lz4hc", "none"])
def test_every_codec_stores_the_same_float16_rows(tmp_path, codec):
    s = SpectraStore.create(tmp_path / "s.zarr", GRID, codec=codec)
    s.append(rows(4), {"id": np.array([f"a{i}" for i in range(4)])})
    want = rows(4).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(SpectraStore.open(tmp_path / "s.zarr").read(np.arange(4)), want)
    compressors = s.flux.compressors
    assert (len(compressors) == 0) if codec == "none" else compressors[0].cname.value == codec


def test_unknown_codec_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown codec 'gzip'"):
        SpectraStore.create(tmp_path / "s.zarr", GRID, codec="gzip")


def test_uncommitted_rows_are_invisible(tmp_path):
    s = SpectraStore.create(tmp_path / "s.zarr", GRID)
    s.append(rows(4), {"teff": np.arange(4.0)})
    # simulate a writer killed after writing rows but before the commit point
    s.flux.resize((6, GRID.length))
    s.flux[4:6] = rows(2, 5)
    s.lock.release()  # the killed writer's lock is gone with it
    again = SpectraStore.open(tmp_path / "s.zarr", mode="a")
    assert again.n == 4 and len(again.meta["teff"]) == 4
    again.append(rows(1, 9), {"teff": np.array([9.0])})
    assert again.n == 5 and again.flux.shape[0] == 5
    np.testing.assert_allclose(again.read([4])[0], rows(1, 9)[0], rtol=1e-3, equal_nan=True)


def test_staged_rows_in_uneven_pieces_commit_to_the_appended_content(tmp_path):
    want = rows(13, 3)
    appended = SpectraStore.create(tmp_path / "a.zarr", GRID, chunk_rows=4)
    appended.append(want[:2], {"id": np.array(["r0", "r1"])})
    appended.append(want[2:], {"id": np.array([f"r{i}" for i in range(2, 13)])})
    staged = SpectraStore.create(tmp_path / "s.zarr", GRID, chunk_rows=4)
    staged.append(want[:2], {"id": np.array(["r0", "r1"])})
    for lo, hi in ((2, 5), (5, 11), (11, 13)):  # across chunk boundaries, starting mid-chunk
        staged.stage(want[lo:hi])
        assert SpectraStore.open(tmp_path / "s.zarr").n == 2  # invisible until committed
    with pytest.raises(StoreError, match="not committed"):
        staged.append(want[:1], {"id": np.array(["x"])})
    staged.commit({"id": np.array([f"r{i}" for i in range(2, 13)])})
    a, s = SpectraStore.open(tmp_path / "a.zarr"), SpectraStore.open(tmp_path / "s.zarr")
    assert s.n == 13 and list(s.meta["id"]) == list(a.meta["id"])
    assert np.array_equal(s.flux[:].view(np.uint16), a.flux[:].view(np.uint16))
    np.testing.assert_allclose(s.read(np.arange(13)), want, rtol=1e-3, equal_nan=True)


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no store there"):
        SpectraStore.open(tmp_path / "missing.zarr")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(StoreError, match="not a spectra_lightning store"):
        SpectraStore.open(tmp_path / "other.zarr")
    s = SpectraStore.create(tmp_path / "s.zarr", GRID)
    with pytest.raises(ValueError, match="does not match the grid length"):
        s.append(np.zeros((2, 10)), {})
    with pytest.raises(ValueError, match="has 1 rows for 2 spectra"):
        s.append(rows(2), {"teff": np.zeros(1)})
    assert SpectraStore.open(tmp_path / "s.zarr").n == 0  # nothing half-written


def test_store_attributes_describe_the_grid(tmp_path):
    SpectraStore.create(tmp_path / "s.zarr", GRID, attrs={"producer": "test"})
    attrs = json.loads((tmp_path / "s.zarr" / "zarr.json").read_text())["attributes"]
    assert attrs["format"] == "spectra_lightning.store" and attrs["version"] == 2
    assert SpectralGrid(**attrs["grid"]) == GRID and attrs["producer"] == "test"
    assert "log" not in attrs["grid"]  # a linear air grid is described as in version 1
    # a version-1 store (every store before log grids) opens as it did
    raw = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")
    raw.attrs["version"] = 1
    assert SpectraStore.open(tmp_path / "s.zarr").grid == GRID
    # a log grid travels in the description
    SpectraStore.create(tmp_path / "log.zarr", SpectralGrid.named("sdss"))
    assert SpectraStore.open(tmp_path / "log.zarr").grid == SpectralGrid.named("sdss")


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_fsspec_urls(tmp_path, scheme):
    url = f"file://{tmp_path}/u.zarr" if scheme == "file" else "memory://spectra/u.zarr"
    s = SpectraStore.create(url, GRID)
    s.append(rows(2), {"teff": np.ones(2)})
    s2 = SpectraStore.open(url)
    assert s2.n == 2
    np.testing.assert_allclose(s2.read([1])[0], rows(2)[1], rtol=1e-3, equal_nan=True)


def test_verify_finds_a_row_whose_flux_belongs_to_another_id(tmp_path, capsys):
    from spectra_lightning.cli import main

    path = tmp_path / "s.zarr"
    with SpectraStore.create(path, GRID, chunk_rows=4) as s:
        s.append(rows(10, 1), {"id": np.array([f"r{i}" for i in range(10)])})
    assert verify(SpectraStore.open(path)) == {
        "n_spectra": 10,
        "checked": 10,
        "unchecked": 0,
        "mismatched": [],
        "missing_chunks": [],
        "damaged_chunks": [],
        "missing_checksums": [],
        "duplicate_ids": {},
        "ok": True,
    }
    assert main(["verify", str(path), "--quiet"]) == 0
    # what two unlocked writers did: another spectrum's flux under row 6's id, and one id twice
    raw = zarr.open_group(str(path), mode="r+")
    raw["flux"][6] = raw["flux"][2]
    raw["meta/id"][8] = "r1"
    result = verify(SpectraStore.open(path))
    assert result["mismatched"] == [{"row": 6, "id": "r6"}] and result["duplicate_ids"] == {"r1": [1, 8]}
    assert main(["verify", str(path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "row 6 (id r6): flux does not match its checksum" in out and "INCONSISTENT" in out


def test_a_damaged_store_is_refused_at_open(tmp_path):
    path = tmp_path / "s.zarr"
    with SpectraStore.create(path, GRID) as s:
        s.append(rows(3), {"id": np.array(["a", "b", "c"])})
    zarr.open_group(str(path), mode="r+").attrs["n_spectra"] = 5
    with pytest.raises(StoreError, match="n_spectra is 5 but flux has 3 rows"):
        SpectraStore.open(path)


def test_one_writer_at_a_time(tmp_path):
    path = tmp_path / "s.zarr"
    first = SpectraStore.create(path, GRID)
    assert (tmp_path / "s.zarr.lock").exists()
    with pytest.raises(StoreLockedError, match=r"being written by another writer \(host .*pid " + str(os.getpid())):
        SpectraStore.open(path, mode="a")
    assert SpectraStore.open(path).n == 0  # readers are never locked out
    with pytest.raises(StoreError, match="read-only"):
        SpectraStore.open(path).append(rows(1), {})
    first.close()
    assert not (tmp_path / "s.zarr.lock").exists()
    with SpectraStore.open(path, mode="a") as again:
        again.append(rows(1), {"id": np.array(["x"])})
    assert not (tmp_path / "s.zarr.lock").exists()


def test_a_dead_writers_lock_is_taken_over_a_live_or_remote_one_is_not(tmp_path):
    path = tmp_path / "s.zarr"
    SpectraStore.create(path, GRID).close()
    lock_file = tmp_path / "s.zarr.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_file.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "time": 0}))
    with SpectraStore.open(path, mode="a") as s:  # the holder is gone: taken over
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
        s.append(rows(1), {"id": np.array(["y"])})
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_file.write_text(
            json.dumps({"host": socket.gethostname(), "pid": live.pid, "time": 0, "command": "ingest elsewhere"})
        )
        with pytest.raises(StoreLockedError, match=f"pid {live.pid}.*ingest elsewhere"):
            SpectraStore.open(path, mode="a")
    finally:
        live.kill()
        live.wait()
    lock_file.write_text(json.dumps({"host": "another-node", "pid": dead.pid, "time": 0}))
    with pytest.raises(StoreLockedError, match="host another-node"):  # cannot tell from here: refused
        SpectraStore.open(path, mode="a")
    assert SpectraStore.open(path).n == 1


def test_the_lock_works_on_fsspec_stores():
    url = "memory://locks/s.zarr"
    first = SpectraStore.create(url, GRID)
    with pytest.raises(StoreLockedError):
        SpectraStore.open(url, mode="a")
    first.close()
    with SpectraStore.open(url, mode="a") as s:
        s.append(rows(2), {"id": np.array(["a", "b"])})
    assert verify(SpectraStore.open(url))["ok"]


def test_a_store_keeps_inverse_variances_and_guards_them_like_the_flux(tmp_path):
    """ivar rows come back as written (float32; unusable values as 0); a store without them refuses ivar and
    says so; a lost or altered ivar chunk is caught on read and by verify."""
    from spectra_lightning.store import DamagedStoreError

    path = tmp_path / "s.zarr"
    s = SpectraStore.create(path, GRID, chunk_rows=4, ivar=True)
    ivar = np.random.default_rng(2).uniform(1, 1e5, (8, GRID.length)).astype(np.float32)
    ivar[0, :5] = [np.nan, np.inf, -1, 0, 7.5]
    s.append(rows(8), {"id": np.array([f"a{i}" for i in range(8)])}, ivar=ivar)
    with pytest.raises(ValueError, match="keeps inverse variances"):
        s.append(rows(1), {"id": np.array(["x"])})
    s.close()
    back = SpectraStore.open(path)
    got = back.read_ivar([5, 0])
    np.testing.assert_array_equal(got[0], ivar[5])
    np.testing.assert_array_equal(got[1, :5], [0, 0, 0, 0, 7.5])
    np.testing.assert_array_equal(back.read_ivar_block(0, 8)[1:], ivar[1:])
    assert verify(back)["ok"] and back.meta["ivar_crc32"].min() >= 0
    # both DataModules' readers hand them on: the map-style dataset and the streaming block reader
    from spectra_lightning.data_modules.spectra import StoreDataset
    from spectra_lightning.data_modules.streaming import BlockStream

    item = StoreDataset(back, np.arange(8), np.zeros((8, 0), np.float32), in_memory=False)[3]
    np.testing.assert_array_equal(item["ivar"].numpy(), np.where(item["mask"].numpy(), ivar[3], 0))
    streamed = list(BlockStream._items(back, np.arange(2, 7), np.ones(5)))
    assert [int(r) for r, _, _, _ in streamed] == [2, 3, 4, 5, 6]
    np.testing.assert_array_equal(np.stack([iv for _, _, _, iv in streamed]), ivar[2:7])
    plain = SpectraStore.create(tmp_path / "p.zarr", GRID)
    with pytest.raises(StoreError, match="keeps no inverse variance"):
        plain.read_ivar([0])
    with pytest.raises(ValueError, match="keeps no inverse variances"):
        plain.append(rows(1), {"id": np.array(["x"])}, ivar=ivar[:1])
    # damage: a lost chunk (reads as NaN fill) and rows altered behind the store's back
    (path / "ivar/c/1/0").unlink()
    with pytest.raises(DamagedStoreError, match=r"rows 6 of ivar are missing"):
        SpectraStore.open(path).read_ivar([6])
    raw = zarr.open_group(str(path), mode="r+")
    raw["ivar"][0:1] = ivar[1:2]
    report = verify(SpectraStore.open(path))
    assert not report["ok"] and {"row": 0, "id": "a0", "array": "ivar"} in report["mismatched"]
    assert any(c["array"] == "ivar" and c["rows"] == [4, 7] for c in report["missing_chunks"])
