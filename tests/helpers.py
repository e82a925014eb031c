"""Helpers shared by test modules (fixtures stay in conftest.py): paths, the real-file skip, one tiny fit config."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
TESTS = Path(__file__).resolve().parent


def run_cli(args: list[str], cwd, ok: bool = True) -> subprocess.CompletedProcess:
    """``python -m spectra_lightning ARGS`` in a fresh process, as from a shell (DDP runs need one); the tests
    folder is importable there (``stream_probe``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.pop("SPECTRA_LIGHTNING_RUN_DIR", None)
    env.pop("WANDB_SERVICE", None)  # each command its own W&B service, as from a shell
    # its own session: a DDP run's other ranks die with it (on a timeout, or a rank 0 that failed and left them)
    proc = subprocess.Popen(
        [sys.executable, "-m", "spectra_lightning", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if ok:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def real_file(rel: str) -> Path:
    path = REAL / rel
    if not path.exists():
        pytest.skip(f"real spectra not available: {path} (needs ../shared beside the repo)")
    return path


def tiny_model(weight: float = 0.1, **net) -> dict:
    """The ``model`` section of a seconds-long fit: a 4-node, 5-layer VAE, L1 summed over pixels, constant λ."""
    return {
        "net": {
            "class_path": "spectra_lightning.model.nets.ConvAutoencoder",
            "init_args": {"latent_dim": 4, "depth": 5, **net},
        },
        "loss": {"class_path": "spectra_lightning.model.losses.AbsoluteError", "init_args": {"normalisation": "sum"}},
        "kl_schedule": {"class_path": "spectra_lightning.model.kl_schedules.Constant", "init_args": {"weight": weight}},
    }


def tiny_config(tmp_path, store, data: dict | None = None, **trainer) -> Path:
    """A YAML config for a seconds-long CPU fit of a 4-node VAE on ``store``; ``data`` (init args) and
    ``trainer`` keys override."""
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp_path / "run"),
            **trainer,
        },
        "model": tiny_model(),
        "data": {
            "class_path": "spectra_lightning.data_modules.SpectraDataModule",
            "init_args": {"store": str(store), "batch_size": 16, "val_fraction": 0.25, **(data or {})},
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def harps_spectra() -> list[Path]:
    """The real HARPS spectra (no CCFs) in ../shared, or a skip."""
    files = sorted(p for p in (REAL / "harps").rglob("*.fits") if "ccf" not in str(p)) if REAL.exists() else []
    if not files:
        pytest.skip(f"real spectra not available: {REAL} (needs ../shared beside the repo)")
    return files


def ingest_cmd(inputs, out, *extra) -> list[str]:
    """The ``ingest`` command line, for a process a test can kill."""
    return [
        sys.executable,
        "-m",
        "spectra_lightning",
        "ingest",
        *map(str, inputs),
        "--output",
        str(out),
        "--quiet",
        *extra,
    ]


def wandb_records(run_dir: Path) -> list:
    """Every record of an offline W&B run (``run-*.wandb``), parsed with W&B's own protobuf schema.

    The file is W&B's append-only log: a 7-byte header (``:W&B``, magic, version), then 32 KiB blocks of
    chunks, each ``crc32 (4) | length (2) | type (1) | data``: FULL=1 holds a record, FIRST=2, MIDDLE=3 and
    LAST=4 split one across blocks; fewer than 7 bytes left in a block are padding.
    """
    import struct
    import zlib

    from wandb.proto import wandb_internal_pb2

    (path,) = Path(run_dir).glob("run-*.wandb")
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path}: not a W&B run log"
    block, pos, records, partial = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left  # zero padding to the end of the block
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, f"{path}: bad checksum at {pos}"
        pos += 7 + length
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(partial)
            records.append(record)
    return records


def streaming_config(tmp_path, store, data: dict | None = None, **trainer) -> Path:
    """A YAML config for a short CPU fit streamed by ``StreamingSpectraDataModule`` from ``store`` (a path or
    URL), recording the rows each rank sees (``stream_probe.IndexRecorder``)."""
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 2,
            "enable_progress_bar": False,
            "logger": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp_path / "run"),
            "callbacks": [{"class_path": "stream_probe.IndexRecorder"}],
            **trainer,
        },
        "model": tiny_model(),
        "data": {
            "class_path": "spectra_lightning.data_modules.StreamingSpectraDataModule",
            "init_args": {
                "store": str(store),
                "batch_size": 8,
                "val_fraction": 0.2,
                "num_workers": 1,
                "shuffle_buffer": 16,
                **(data or {}),
            },
        },
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def kill_when_rows(proc: subprocess.Popen, store, rows: int, timeout: float = 180) -> list[int]:
    """``kill -9`` a writer once ``store`` holds at least ``rows`` spectra (or it ends, or ``timeout`` s pass);
    returns its child processes as they were just before."""
    import signal
    import time

    from spectra_lightning.store import SpectraStore

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if SpectraStore.open(store).n >= rows:
                break
        except Exception:
            pass  # not created yet, or caught mid-commit
        time.sleep(0.05)
    workers = children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return workers


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc; empty elsewhere)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields after "(comm)": state, ppid, ...
            out.append(int(stat.parent.name))
    return out


class LastCheckpointProbe(L.Callback):
    """At the start of every epoch after the first, appends "<epoch> <epoch stored in last.ckpt>" to
    ``out`` (what a run killed then would resume from)."""

    def __init__(self, out: str):
        self.out = out

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            return
        import torch

        last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        saved = torch.load(last, map_location="cpu", weights_only=False)["epoch"] if last.exists() else None
        with open(self.out, "a") as f:
            f.write(f"{trainer.current_epoch} {saved}\n")


def ddp_fit_checks(tmp_path, store: str) -> Path:
    """Fit two DDP processes streaming ``store`` (a path or URL of one spectrum per star) and check what DDP must
    keep: each training spectrum once per epoch across the ranks, and a final report over every test spectrum
    once (an odd test split pads one rank's share with a repeat), equal to one process's numbers. The run's
    folder is returned."""
    import json

    import numpy as np

    from spectra_lightning.analysis.encode import encode
    from spectra_lightning.data_modules.split import assign_splits
    from spectra_lightning.metrics.report import latent_report
    from spectra_lightning.store import SpectraStore

    store_meta = SpectraStore.open(store).meta
    test_fraction = next(
        f for f in np.arange(0.1, 0.3, 0.01) if len(assign_splits(store_meta, 0.2, f, seed=0)["test"]) % 2
    )
    metrics = {
        "class_path": "spectra_lightning.callbacks.LatentMetrics",
        "init_args": {"figures_every_n_epochs": 0, "final_figures": False, "intervals": 0},
    }
    cfg = streaming_config(tmp_path, store, {"test_fraction": float(test_fraction)})
    spec = yaml.safe_load(cfg.read_text())
    spec["trainer"]["callbacks"].append(metrics)
    cfg.write_text(yaml.safe_dump(spec))
    run_cli(["fit", "--config", str(cfg), "--trainer.strategy=ddp", "--trainer.devices=2"], tmp_path)
    run = tmp_path / "run"
    probes = [json.loads((run / f"probe_rank{r}.json").read_text()) for r in range(2)]
    assert all(p["world"] == 2 for p in probes)
    assert probes[0]["steps"] == probes[1]["steps"] > 0
    split = json.loads((run / "split.json").read_text())
    pos = {v: i for i, v in enumerate(store_meta["id"])}
    train = sorted(pos[i] for i in split["split_ids"]["train"])
    for epoch in ("0", "1"):
        seen = probes[0]["seen"][epoch] + probes[1]["seen"][epoch]
        assert sorted(seen) == train  # each training spectrum exactly once across both ranks
    objects = {k: {store_meta["object"][pos[i]] for i in v} for k, v in split["split_ids"].items()}
    assert not (objects["train"] & objects["val"]) and not (objects["train"] & objects["test"])
    # the final report: every test spectrum once, gathered from both ranks, the same numbers as one process
    report = json.loads((run / "report.json").read_text())
    rows = np.array(sorted(pos[i] for i in split["split_ids"]["test"]))
    assert len(rows) % 2 == 1 and report["split"] == "test" and report["n_spectra"] == len(rows)
    ckpt = next((run / "checkpoints").glob("*.ckpt"))  # the final weights: the report's
    encode(ckpt, store, str(tmp_path / "codes.zarr"), device="cpu", progress=False)
    import zarr

    codes = zarr.open_group(str(tmp_path / "codes.zarr"), mode="r")
    names = ["rv", "teff", "logg", "feh", "vsini", "snr"]
    labels = dict(zip(names, SpectraStore.open(store).labels(names)[rows].T))
    single = latent_report(codes["mu"][:][rows], labels, codes["logvar"][:][rows], intervals=0)
    np.testing.assert_allclose(report["mad"]["values"], single["mad"]["values"], atol=1e-5)
    assert report["mad"]["informative"] == single["mad"]["informative"]
    for name in names:
        np.testing.assert_allclose(report["mi"]["ksg"][name]["values"], single["mi"]["ksg"][name]["values"], atol=0.02)
    return run


def linear_fits(path, seed: int, start: float = 5150.0, step: float = 0.5, n: int = 500, obj: str = "star") -> Path:
    """A 1-D FITS spectrum with a linear WCS (Å), its flux a deterministic function of ``seed``: the same seed
    writes the same bytes (the inputs of a store kept in tests/data can be made again)."""
    import numpy as np
    from astropy.io import fits

    x = np.arange(n)
    flux = 1.0 + 0.2 * np.sin(x / (7.0 + seed)) - 0.5 * np.exp(-0.5 * ((x - 40 * seed - 60) / 3.0) ** 2)
    hdu = fits.PrimaryHDU(flux.astype(np.float32))
    hdu.header.update(CRVAL1=start, CDELT1=step, CRPIX1=1, CUNIT1="Angstrom", OBJECT=obj)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path, overwrite=True)
    return Path(path)
