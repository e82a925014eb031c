"""Runs that are whole: resume continues the same run, DDP reports cover every rank, a fit that
cannot train fails, and a non-finite loss stops the run."""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from helpers import TESTS, tiny_model


def write_config(path, store, trainer=None, data=None, model=None, callbacks=()):
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "enable_model_summary": False,
            "log_every_n_steps": 1,
            "callbacks": [{"class_path": c} if isinstance(c, str) else c for c in callbacks],
            **(trainer or {}),
        },
        "model": {**tiny_model(), **(model or {})},
        "data": {
            "class_path": "spectra_lightning.data_modules.SpectraDataModule",
            "init_args": {"store": str(store), "batch_size": 16, "val_fraction": 0.25, **(data or {})},
        },
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_resume_continues_the_run_its_wandb_run_its_split_and_its_data_order(tmp_path, tiny_store, monkeypatch, capsys):
    from spectra_lightning.cli import main

    monkeypatch.chdir(tmp_path)
    logger = {"class_path": "spectra_lightning.analysis.loggers.AutoWandbLogger", "init_args": {"project": "t"}}
    checkpoint = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}
    cfg = write_config(
        tmp_path / "cont.yaml",
        tiny_store,
        {"max_epochs": 1, "logger": logger},
        callbacks=[checkpoint, "stream_probe.IndexRecorder"],
    )
    assert main(["fit", "--config", str(cfg)]) == 0
    out = capsys.readouterr()
    # stdout is not a terminal here: one line per epoch, no progress bar redraws
    assert "\r" not in out.out + out.err
    assert re.search(r"^epoch 1/1  step \d+  train/loss \S+  val/loss \S+  \(\d+\.\d s\)$", out.out, re.M), out.out
    (run,) = (tmp_path / "runs" / "cont").iterdir()
    first = json.loads((run / "run.json").read_text())
    split = json.loads((run / "split.json").read_text())
    resume = [
        "fit",
        "--config",
        str(cfg),
        "--trainer.max_epochs=2",
        "--data.init_args.split_seed=99",
        f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
    ]
    assert main(resume) == 0
    assert [p.name for p in (tmp_path / "runs" / "cont").iterdir()] == [run.name]  # no second run directory
    record = json.loads((run / "run.json").read_text())
    assert record["wandb_id"] == first["wandb_id"] and len(record["resumed"]) == 1
    offline = sorted(p.name for p in (run / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(first["wandb_id"] in name for name in offline)  # W&B adds -1 in one second
    ckpts = {p.name for p in (run / "checkpoints").glob("*.ckpt")}
    assert "last.ckpt" in ckpts and any("epoch=1" in c for c in ckpts)
    resumed_split = json.loads((run / "split.json").read_text())
    assert resumed_split["split_ids"] == split["split_ids"] and resumed_split["seed"] == 0
    assert resumed_split["restored_from_checkpoint"] is True
    # the resumed epoch 1 sees the order an uninterrupted run sees in its epoch 1, not epoch 0's again
    resumed = json.loads((run / "probe_rank0.json").read_text())["seen"]
    straight = ["fit", "--config", str(cfg), "--trainer.max_epochs=2", "--trainer.default_root_dir=straight"]
    assert main([*straight, "--trainer.logger=false"]) == 0
    straight = json.loads((tmp_path / "straight" / "probe_rank0.json").read_text())["seen"]
    assert list(resumed) == ["1"] and resumed["1"] == straight["1"] and straight["1"] != straight["0"]


def test_no_training_batch_for_a_rank_fails_in_one_line(tmp_path):
    """What a 2-rank DDP run of too few spectra says (the DataModule asks the trainer for its world size)."""
    from types import SimpleNamespace

    from spectra_lightning.common.errors import ConfigError
    from spectra_lightning.data_modules import SpectraDataModule
    from spectra_lightning.ingest.synth import SynthSpec, synthesize

    store = tmp_path / "s96.zarr"
    synthesize(str(store), SynthSpec(n=96, seed=5, grid="tiny"), progress=False)
    dm = SpectraDataModule(store=str(store), batch_size=32, val_fraction=0.5, test_fraction=0.0)
    dm.setup("fit")
    dm.trainer = SimpleNamespace(world_size=2, log_dir=None)
    with pytest.raises(ConfigError) as e:
        dm.train_dataloader()
    msg = str(e.value)
    assert "\n" not in msg and "no training batch" in msg and "over 2 ranks" in msg and "batch_size=32" in msg
    dm.trainer = SimpleNamespace(world_size=1, log_dir=None)
    assert len(dm.train_dataloader()) == 1  # the same data on one rank trains


def test_an_infinite_pixel_never_reaches_the_loss_and_a_non_finite_loss_stops_the_run(tmp_path, tiny_store, capsys):
    import shutil

    import zarr

    from spectra_lightning.cli import main

    store = tmp_path / "inf.zarr"
    shutil.copytree(tiny_store, store)
    flux = zarr.open_group(str(store), mode="r+")["flux"]
    row = flux[3]
    row[200] = np.inf
    row[201] = -np.inf
    flux[3] = row
    common = {"max_epochs": 1, "logger": False, "default_root_dir": str(tmp_path / "run"), "enable_progress_bar": False}
    metrics = {
        "class_path": "spectra_lightning.callbacks.LatentMetrics",
        "init_args": {"figures_every_n_epochs": 0, "final_figures": False},
    }
    for data_class, doppler in (
        ("spectra_lightning.data_modules.StreamingSpectraDataModule", 0),
        ("spectra_lightning.data_modules.SpectraDataModule", None),
    ):
        cfg = write_config(
            tmp_path / "inf.yaml",
            store,
            common,
            model={"net": tiny_model(doppler_node=doppler)["net"]},
            data={"val_fraction": 0.25, "check_checksums": False},  # the row was changed behind its checksum
            callbacks=[metrics],
        )
        data = yaml.safe_load(cfg.read_text())
        data["data"]["class_path"] = data_class
        cfg.write_text(yaml.safe_dump(data))
        assert main(["fit", "--config", str(cfg)]) == 0
        report = json.loads((tmp_path / "run" / "report.json").read_text())
        assert all(v is not None and np.isfinite(v) for v in report["mad"]["values"])
        (tmp_path / "run" / "report.json").unlink()
    capsys.readouterr()
    # a learning rate that blows the weights up: stopped with the step and the batch's spectra named
    cfg = write_config(
        tmp_path / "nan.yaml",
        tiny_store,
        {**common, "default_root_dir": str(tmp_path / "nan")},
        model={
            "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e12}},
            "kl_schedule": {
                "class_path": "spectra_lightning.model.kl_schedules.Constant",
                "init_args": {"weight": 1e12},
            },
        },
        callbacks=[metrics],
    )
    rc = main(["fit", "--config", str(cfg)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "non-finite loss at step" in err[0] and "synth-3-" in err[0], err
    assert not (tmp_path / "nan" / "report.json").exists()


def test_the_recipes_rewrite_last_ckpt_every_epoch_even_when_the_validation_loss_rises(tmp_path, tiny_store):
    """Lightning 2.6's ``save_last`` copies only a new best (and ``save_top_k: 0`` + ``save_last`` writes it
    only at the end); the recipes' second checkpoint rewrites ``last.ckpt`` every epoch, so a run whose λ
    ramps up (val/loss rising) and is killed mid-way resumes from the epoch before."""
    import torch

    from spectra_lightning.cli import main

    from helpers import REPO

    recipe = yaml.safe_load((REPO / "experiments/quickstart.yaml").read_text())
    checkpoints = [c for c in recipe["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    probe = {"class_path": "helpers.LastCheckpointProbe", "init_args": {"out": str(tmp_path / "probe.txt")}}
    cfg = write_config(
        tmp_path / "c.yaml",
        tiny_store,
        trainer={"max_epochs": 4, "default_root_dir": str(tmp_path / "run"), "enable_progress_bar": False},
        model={  # weights ~frozen, λ rising
            "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-9}},
            "kl_schedule": {
                "class_path": "spectra_lightning.model.kl_schedules.LinearWarmup",
                "init_args": {"weight": 10.0, "length": 0.99},
            },
        },
        callbacks=[*checkpoints, probe],
    )
    assert main(["fit", "--config", str(cfg)]) == 0
    # what a kill at the start of each epoch would have left
    assert (tmp_path / "probe.txt").read_text().split("\n")[:-1] == ["1 0", "2 1", "3 2"]
    saved = {
        p.name: torch.load(p, map_location="cpu", weights_only=False)
        for p in (tmp_path / "run/checkpoints").glob("*.ckpt")
    }
    best = [c for name, c in saved.items() if name.startswith("epoch=")]
    assert [n for n in saved if not n.startswith("epoch=")] == ["last.ckpt"], sorted(saved)  # no last-v1 etc.
    assert len(best) == 1 and best[0]["epoch"] == 0  # val/loss rose after the first epoch
    assert saved["last.ckpt"]["global_step"] == 4 * best[0]["global_step"]


def test_a_resume_that_contradicts_its_checkpoint_or_ends_before_it_is_one_line(tmp_path, tiny_store, capsys):
    """A changed model setting on resume used to be silently replaced by the checkpoint's; a max_epochs the
    checkpoint already reached trained nothing and still recorded a resume."""
    from spectra_lightning.cli import main

    cfg = write_config(tmp_path / "r.yaml", tiny_store, {"max_epochs": 1, "default_root_dir": str(tmp_path / "run")})
    assert main(["fit", "--config", str(cfg), "--trainer.logger=false"]) == 0
    (ckpt,) = (tmp_path / "run" / "checkpoints").glob("*.ckpt")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    capsys.readouterr()
    base = ["fit", "--config", str(cfg), "--trainer.logger=false", f"--ckpt_path={ckpt}"]
    assert main([*base, "--trainer.max_epochs=3", "--model.net.init_args.latent_dim=8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "net.init_args.latent_dim: 4 (checkpoint) vs 8 (given)" in err[0], err
    assert main([*base, "--trainer.max_epochs=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trainer.max_epochs=1: the checkpoint" in err[0] and "completed 1 epochs" in err[0]
    assert json.loads((tmp_path / "run" / "run.json").read_text()) == record  # no "resumed" entry
    # validate takes the checkpoint's model, and says what it overrode
    assert main(["validate", "--config", str(cfg), f"--ckpt_path={ckpt}", "--model.net.init_args.latent_dim=8"]) == 0
    assert "the model is the checkpoint's: net.init_args.latent_dim: 4 (checkpoint) vs 8" in capsys.readouterr().err


def test_two_fits_into_one_run_directory_never_collide(tmp_path, tiny_store):
    """Two fits into one --trainer.default_root_dir at the same time both exited 0 with one run's files left:
    the second is refused in one line while the first runs (and the first finishes whole)."""
    from spectra_lightning.common.run_layout import new_run_dir

    run = tmp_path / "shared_run"
    cfg = write_config(
        tmp_path / "c.yaml", tiny_store, {"max_epochs": 30, "logger": False, "default_root_dir": str(run)}
    )
    env = {"PYTHONPATH": str(TESTS)}
    first = subprocess.Popen(
        [sys.executable, "-m", "spectra_lightning", "fit", "--config", str(cfg)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "run.lock").exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first fit never took its lock"
            time.sleep(0.1)
        second = subprocess.run(
            [sys.executable, "-m", "spectra_lightning", "fit", "--config", str(cfg), "--trainer.max_epochs=1"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        err = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(err) == 1, second.stderr
        assert "another fit is writing this run directory" in err[0] and f"pid {first.pid}" in err[0]
    finally:
        assert first.wait(timeout=600) == 0, first.stderr.read()[-2000:]
    assert not (run / "run.lock").exists()  # released at the end
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_epochs"] == 30
    # runs named by the clock get their own directory even when started in the same second
    a, b = (
        new_run_dir(tmp_path / "runs" / "x" / "20261207-120000"),
        new_run_dir(tmp_path / "runs" / "x" / "20261207-120000"),
    )
    assert a != b and a.is_dir() and b.is_dir() and b.name == "20261207-120000-2"


def test_an_unwritable_run_directory_is_one_line(tmp_path, tiny_store, capsys):
    from spectra_lightning.cli import main

    (tmp_path / "a_file").write_text("not a directory")
    cfg = write_config(tmp_path / "c.yaml", tiny_store, {"max_epochs": 1, "logger": False})
    rc = main(["fit", "--config", str(cfg), f"--trainer.default_root_dir={tmp_path / 'a_file' / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cannot write the run there" in err[0], err
