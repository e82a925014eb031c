"""The real CLI, driven through ``main(args)`` as a user would from the shell."""

import csv
import json
import logging
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
import yaml

from spectra_lightning.cli import main
from spectra_lightning.store import SpectraStore

from helpers import REPO, tiny_config, wandb_records


def test_overview_and_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "fit" in out and "synth" in out
    with pytest.raises(SystemExit) as e:
        main(["fit", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--model.kl_schedule" in out and "--model.kl_schedule.init_args.weight" in out
    # the DataModule's options are listed where a user looks, one per line
    assert "\n  --data.init_args.store " in out and "\n  --data.init_args.batch_size " in out
    assert main(["frobnicate"]) == 2


def test_the_data_tools_start_without_torch_or_lightning(tmp_path):
    # `synth`, `ingest` and `verify` are run by hand and in scripts: they must not pay for importing
    # torch and Lightning (seconds), which only the training commands need
    store = str(tmp_path / "s.zarr")
    code = f"""
import contextlib, sys
from spectra_lightning.cli import main
main(["synth", "--output", {store!r}, "--n", "4", "--grid", "tiny", "--quiet"])
main(["verify", {store!r}, "--quiet"])
with contextlib.suppress(SystemExit):
    main(["ingest", "--help"])
print(sorted(m for m in ("torch", "lightning") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_print_config_of_quickstart(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(REPO / "experiments/quickstart.yaml"), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    written = yaml.safe_load((REPO / "experiments/quickstart.yaml").read_text())
    for part in ("net", "loss", "kl_schedule", "optimizer"):  # each part as written, defaults filled in
        assert printed["model"][part]["class_path"] == written["model"][part]["class_path"]
        got = printed["model"][part]["init_args"]
        assert {k: got[k] for k in written["model"][part]["init_args"]} == written["model"][part]["init_args"]
    assert printed["model"]["net"]["init_args"]["doppler_node"] is None  # the default builds in no Doppler physics
    assert printed["model"]["kl_schedule"]["init_args"]["unit"] == "fraction"
    assert printed["data"]["init_args"]["synth"]["grid"] == "quickstart"


def test_fast_dev_run(tmp_path, tiny_store):
    """fast_dev_run: one batch of each loop, then done — nothing trained beyond it, no checkpoint written."""
    import json

    cfg = tiny_config(tmp_path, tiny_store, logger=False, callbacks=[{"class_path": "stream_probe.IndexRecorder"}])
    assert main(["fit", "--config", str(cfg), "--trainer.fast_dev_run=true"]) == 0
    seen = json.loads((tmp_path / "run" / "probe_rank0.json").read_text())["seen"]
    assert [len(rows) for rows in seen.values()] == [16]  # one epoch of one training batch of 16 spectra
    assert not list((tmp_path / "run").rglob("*.ckpt"))


def test_short_fit_lowers_validation_loss(tmp_path, tiny_store, capsys, caplog):
    cfg = tiny_config(
        tmp_path,
        tiny_store,
        max_epochs=6,
        log_every_n_steps=1,
        logger={
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": str(tmp_path / "run"), "name": "csv", "version": 0},
        },
    )
    lr = ["--model.optimizer=torch.optim.Adam", "--model.optimizer.init_args.lr=0.003"]
    caplog.set_level(logging.INFO, logger="lightning.pytorch")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["fit", "--config", str(cfg), *lr]) == 0
    # Lightning's notices of what is so on purpose, and its advert, stay off the user's screen
    assert not [w for w in seen if "on_after_batch_transfer" in str(w.message) or "LeafSpec" in str(w.message)]
    infos = [r.getMessage() for r in caplog.records]
    assert any("GPU available" in m for m in infos) and not any("Tip:" in m for m in infos)
    rows = list(csv.DictReader(open(tmp_path / "run/csv/version_0/metrics.csv")))
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(val) == 6 and val[-1] < 0.7 * val[0]
    out = capsys.readouterr().out
    assert "run directory" in out and (tmp_path / "run/csv/version_0/config.yaml").exists()
    assert list((tmp_path / "run/checkpoints").glob("*.ckpt")) and (tmp_path / "run/csv/version_0/split.json").exists()


def test_wandb_logger_runs_offline_without_credentials(tmp_path, tiny_store, monkeypatch, capfd):
    """No key, no mode: the run is written offline; W&B's run ends, quietly, before the run's summary is
    printed (its footer would bury where to look)."""
    import spectra_lightning.analysis.loggers as loggers

    printed_before_finish: list[str] = []
    finish = loggers.finish_wandb

    def finish_and_note(trainer):
        printed_before_finish.append("".join(capfd.readouterr()))
        finish(trainer)

    monkeypatch.setattr(loggers, "finish_wandb", finish_and_note)
    cfg = tiny_config(
        tmp_path,
        tiny_store,
        max_steps=2,
        log_every_n_steps=1,
        limit_val_batches=1,
        logger={"class_path": "spectra_lightning.analysis.loggers.AutoWandbLogger", "init_args": {"project": "test"}},
    )
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # no key, no mode: AutoWandbLogger must choose offline
    monkeypatch.delenv("WANDB_SILENT", raising=False)  # W&B as a user's terminal shows it
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert main(["fit", "--config", str(cfg)]) == 0
    assert len(printed_before_finish) == 1 and "run directory" not in printed_before_finish[0]
    assert "anonymous setting has no effect" not in printed_before_finish[0]  # Lightning passes it unset
    end = capfd.readouterr()
    assert "W&B run:       offline: upload with `wandb sync" in end.out
    assert "Run history" not in end.out + end.err  # W&B's footer (quiet): the run's summary is what stays on screen
    (run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    logged: list[float] = []
    for _ in range(40):  # W&B's writer process may still be flushing the run's log when fit returns
        history = [r.history.item for r in wandb_records(run) if r.WhichOneof("record_type") == "history"]
        steps = [{i.key or "/".join(i.nested_key): i.value_json for i in items} for items in history]
        logged = [float(h["train/loss_step"]) for h in steps if "train/loss_step" in h]
        if len(logged) == 2:
            break
        time.sleep(0.25)
    assert len(logged) == 2 and all(np.isfinite(logged))  # both steps' losses, written locally


def test_synth_command_and_its_errors(tmp_path, capsys):
    out = tmp_path / "s.zarr"
    assert main(["synth", "--output", str(out), "--n", "8", "--grid", "tiny", "--quiet"]) == 0
    assert SpectraStore.open(out).n == 8
    with pytest.raises(SystemExit) as e:
        main(["synth", "--output", str(out), "--n", "8", "--grid", "tiny", "--quiet"])
    assert e.value.code == 2 and "already exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", "--output", str(tmp_path / "t.zarr"), "--grid", "nope"])
    assert "unknown grid 'nope'" in capsys.readouterr().err


def test_wandb_gets_the_nested_config_once_and_sweep_names(tmp_path, tiny_store, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    from spectra_lightning.analysis.loggers import AutoWandbLogger

    captured, passed = {}, []
    original = AutoWandbLogger.log_config

    def spy(self, config):
        captured.update(config=config, name=self._wandb_init.get("name"), group=self._wandb_init.get("group"))
        original(self, config)

    monkeypatch.setattr(AutoWandbLogger, "log_config", spy)
    monkeypatch.setattr(WandbLogger, "log_hyperparams", lambda self, params, *a, **k: passed.append(dict(params)))
    monkeypatch.setenv("WANDB_RUN_GROUP", "mysweep")
    cfg = tiny_config(
        tmp_path,
        tiny_store,
        max_steps=1,
        limit_val_batches=1,
        logger={"class_path": "spectra_lightning.analysis.loggers.AutoWandbLogger", "init_args": {"project": "t"}},
    )
    overrides = ["--model.kl_schedule.init_args.weight=0.5", "--model.net.init_args.latent_dim=3"]
    assert main(["fit", "--config", str(cfg), *overrides]) == 0
    config = captured["config"]
    assert config["model"]["kl_schedule"]["init_args"]["weight"] == 0.5
    assert config["model"]["net"]["init_args"]["latent_dim"] == 3
    assert {"trainer", "data", "model"} <= set(config)
    assert captured["name"] == "kl_schedule.weight=0.5,net.latent_dim=3" and captured["group"] == "mysweep"
    assert not any("weight" in p or "latent_dim" in p for p in passed)  # no flattened duplicates


def test_missing_store_is_one_clear_line(tmp_path, tiny_store, capsys):
    cfg = tiny_config(tmp_path, tiny_store, logger=False)
    assert main(["fit", "--config", str(cfg), f"--data.init_args.store={tmp_path / 'nope.zarr'}"]) == 2
    err = capsys.readouterr().err
    assert "nope.zarr: no store there" in err and "Traceback" not in err


def test_network_optimizer_and_scheduler_from_yaml(tmp_path, tiny_store):
    from spectra_lightning.model.checkpoints import load_model

    cfg = tiny_config(tmp_path, tiny_store, logger=False, max_epochs=2)
    c = yaml.safe_load(cfg.read_text())
    # no n_pixels: the data's grid length is passed to the class
    c["model"]["net"] = {
        "class_path": "spectra_lightning.model.nets.ConvAutoencoder",
        "init_args": {"latent_dim": 4, "depth": 3},
    }
    c["model"]["optimizer"] = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.01, "weight_decay": 0.25}}
    c["model"]["scheduler"] = {
        "class_path": "torch.optim.lr_scheduler.StepLR",
        "init_args": {"step_size": 1, "gamma": 0.5},
    }
    cfg.write_text(yaml.safe_dump(c))
    assert main(["fit", "--config", str(cfg)]) == 0
    ckpt = next((tmp_path / "run/checkpoints").glob("*.ckpt"))
    saved = torch.load(ckpt, weights_only=True)
    (group,) = saved["optimizer_states"][0]["param_groups"]
    (sched,) = saved["lr_schedulers"]
    assert sched["last_epoch"] >= 1 and group["weight_decay"] == 0.25
    assert group["lr"] == pytest.approx(0.01 * 0.5 ** sched["last_epoch"])  # halved per epoch
    model = load_model(ckpt, torch.device("cpu"))
    assert model.net.depth == 3 and model.net.n_pixels == 512  # rebuilt from the checkpoint's own config
    assert sum(isinstance(m, torch.nn.Conv1d) for m in model.net.encoder.modules()) == 3


def test_the_epoch_loss_is_the_mean_of_the_epoch_steps(tmp_path, tiny_store):
    """Logged once an epoch (a Metric logged every step costs ~4 % of a step), still over every step."""
    logger = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(tmp_path / "run"), "name": "csv", "version": 0},
    }
    cfg = tiny_config(tmp_path, tiny_store, max_epochs=2, log_every_n_steps=1, logger=logger)
    assert main(["fit", "--config", str(cfg)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "run/csv/version_0/metrics.csv")))
    n_train = len(json.loads(next((tmp_path / "run").rglob("split.json")).read_text())["split_ids"]["train"])
    for epoch in ("0", "1"):
        steps = [float(r["train/loss_step"]) for r in rows if r["epoch"] == epoch and r.get("train/loss_step")]
        (mean,) = [float(r["train/loss_epoch"]) for r in rows if r["epoch"] == epoch and r.get("train/loss_epoch")]
        # training batches are whole (drop_last): 16 spectra each, so the epoch mean is the plain mean
        assert len(steps) == n_train // 16 > 2 and mean == pytest.approx(np.mean(steps), rel=1e-5)


def test_every_model_option_has_help_text(capsys):
    """`fit --help` shows a help text for every --model.* option, and one line for every option of every model
    part the package ships (network, losses, KL schedules); a docstring entry a parser cannot read fails here."""
    import inspect
    import re

    from spectra_lightning.model import kl_schedules, losses, nets, observed

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    entries = re.split(r"\n  (?=--model\.\w+ )", out.split("\n  --model.", 1)[1].join(["\n  --model.", ""]))
    helps = {}
    for entry in entries:
        m = re.match(r"--model\.(\w+) \S+\s+(.*)", entry, flags=re.S)
        if m:
            helps[m.group(1)] = re.sub(r"\(type:.*", "", " ".join(m.group(2).split()), flags=re.S).strip()
    assert set(helps) == {"net", "loss", "kl_schedule", "variational", "optimizer", "scheduler"}, sorted(helps)
    assert [name for name, text in helps.items() if len(text) < 10] == []
    bases = (("net", nets, nets.SpectrumNet), ("loss", losses, losses.Reconstruction))
    bases += (("kl_schedule", kl_schedules, kl_schedules.KLSchedule), ("net", observed, nets.SpectrumNet))
    shipped = [
        (part, cls)
        for part, module, base in bases
        for cls in vars(module).values()
        if inspect.isclass(cls) and issubclass(cls, base) and cls is not base and cls.__module__ == module.__name__
    ]
    assert len(shipped) >= 7
    for part, cls in shipped:
        for name in inspect.signature(cls.__init__).parameters:
            if name in ("self", "n_pixels"):
                continue
            line = re.search(rf"--model\.{part}\.init_args\.{name} +(.*)", out)
            assert line and len(line.group(1).strip()) >= 5, f"{cls.__name__}.{name} has no help"


@pytest.mark.parametrize("tool", sorted(__import__("spectra_lightning.cli.commands", fromlist=["TOOLS"]).TOOLS))
def test_every_tool_option_has_help_text(tool, capsys):
    """`COMMAND --help` of every tool: each option (and positional) carries a help text, not its bare name."""
    import re

    with pytest.raises(SystemExit) as e:
        main([tool, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    sections = re.split(r"\n(?:options|positional arguments):\n", out)[1:]
    assert sections, out
    bare = []
    for section in sections:
        # an entry: a line at indent 2 naming the argument, its help on the same line or the lines below it
        for entry in re.split(r"\n(?=  \S)", section.split("\n\n")[0]):
            signature, _, rest = entry.strip().partition("  ")
            text = " ".join(rest.split()) or " ".join(entry.strip().split("\n", 1)[1:]).strip()
            if re.sub(r"\(default [^)]*\)", "", text).strip() == "" and not signature.startswith("-h"):
                bare.append(signature)
    assert bare == [], f"{tool}: options without help: {bare}"
