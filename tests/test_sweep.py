"""Every experiment YAML runs; the local sweep runner runs, resumes, survives failures; Figure 4."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from spectra_lightning.analysis.sweep import command, draw, load_sweep, report, run_sweep
from spectra_lightning.cli import main
from spectra_lightning.ingest.synth import SynthSpec, synthesize

from helpers import tiny_model

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted((REPO / "experiments" / "sweeps").glob("*.yaml"))
BASES = sorted((REPO / "experiments").glob("*.yaml"))


@pytest.fixture(scope="module")
def harps_store(tmp_path_factory):
    """Four spectra on the paper's full grid, for the full-size config; eight on the MILES grid and eight on the SDSS
    grid (with ivar) for theirs."""
    path = tmp_path_factory.mktemp("harps") / "h.zarr"
    synthesize(str(path), SynthSpec(n=4, seed=1, grid="harps"), progress=False)
    synthesize(str(path.with_name("m.zarr")), SynthSpec(n=8, seed=1, grid="miles"), progress=False)
    # eight rows on the SDSS log grid with inverse variances, as an ingest of survey files leaves them
    from spectra_lightning.physics.grid import SpectralGrid
    from spectra_lightning.store import SpectraStore

    grid = SpectralGrid.named("sdss")
    rng = np.random.default_rng(0)
    flux = np.where(grid.valid, 1 + 0.1 * rng.standard_normal((8, grid.length)), np.nan)
    ivar = np.where(grid.valid, rng.uniform(10, 100, (8, grid.length)), 0.0)
    with SpectraStore.create(path.with_name("sdss.zarr"), grid, ivar=True) as store:
        store.append(flux, {"id": np.array([f"s{i}" for i in range(8)]), "z": rng.uniform(0, 3, 8)}, ivar=ivar)
    return path


def stack_of(config: Path) -> list[Path]:
    """The configs a user passes for ``config``, as its own header documents them: an overlay names its base
    (``--config experiments/BASE.yaml --config experiments/THIS.yaml``); a base config stands alone."""
    m = re.search(
        rf"--config experiments/([\w.]+\.yaml) --config experiments/{re.escape(config.name)}", config.read_text()
    )
    return [REPO / "experiments" / m.group(1), config] if m else [config]


def overrides_for(config: Path, harps_store) -> list[str]:
    """What a CPU test needs to run a config: tiny data, CPU, no W&B."""
    cfg = yaml.safe_load(config.read_text())
    args = [
        "--trainer.fast_dev_run=true",
        "--trainer.logger=false",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.strategy=auto",
        "--trainer.precision=32-true",
    ]
    if (cfg.get("trainer") or {}).get("callbacks"):  # LatentMetrics is the last; figures are tested elsewhere
        args.append("--trainer.callbacks.init_args.final_figures=false")
    if cfg["data"]["init_args"].get("synth"):
        args.append("--data.init_args.synth.n=48")
    else:
        store = {"miles": "m.zarr", "sdss": "sdss.zarr"}.get(config.stem.split("_")[0], harps_store.name)
        store = harps_store.with_name(store)
        args += [
            f"--data.init_args.store={store}",
            "--data.init_args.batch_size=2",
            "--data.init_args.val_fraction=0.5",
            "--data.init_args.num_workers=0",
        ]
    return args


def built_models(monkeypatch) -> list[dict]:
    """The hyper-parameters (each part as class_path + init_args) of every model a `fit` builds, as it trains."""
    import spectra_lightning.cli.training as cli

    seen: list[dict] = []
    original = cli.prepare_fit

    def spy(built):
        seen.append(dict(built.model.hparams))
        original(built)

    monkeypatch.setattr(cli, "prepare_fit", spy)
    return seen


def test_the_overlays_name_their_base():
    stacks = {c.name: [p.name for p in stack_of(c)] for c in BASES}
    assert stacks["quickstart_doppler.yaml"] == ["quickstart.yaml", "quickstart_doppler.yaml"]
    assert stacks["quickstart_l1.yaml"] == ["quickstart.yaml", "quickstart_l1.yaml"]
    assert stacks["miles_rv.yaml"] == ["miles.yaml", "miles_rv.yaml"]
    assert stacks["quickstart.yaml"] == ["quickstart.yaml"]


@pytest.mark.parametrize("config", BASES, ids=lambda p: p.name)
def test_every_config_runs_as_documented(config, harps_store, tmp_path, monkeypatch):
    # an overlay runs on top of the base its header names (the stack users type); a base runs alone
    chain = stack_of(config)
    monkeypatch.chdir(tmp_path)
    configs = [a for c in chain for a in ("--config", str(c))]
    built = built_models(monkeypatch)
    assert main(["fit", *configs, *overrides_for(chain[0], harps_store)]) == 0
    (model,) = built
    expected: dict[str, dict] = {}  # each part as the stack sets it: a later config's arguments over an earlier's
    for c in chain:
        for part, spec in (yaml.safe_load(c.read_text()).get("model") or {}).items():
            if part in ("net", "loss", "kl_schedule"):
                same = expected.get(part, {}).get("class_path") == spec["class_path"]
                args = {**(expected[part]["init_args"] if same else {}), **(spec.get("init_args") or {})}
                expected[part] = {"class_path": spec["class_path"], "init_args": args}
    assert expected, chain
    for part, spec in expected.items():  # the model that trained is the one the stack describes
        assert model[part]["class_path"] == spec["class_path"], part
        assert {k: model[part]["init_args"][k] for k in spec["init_args"]} == spec["init_args"], part


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda p: p.name)
def test_every_sweep_command_runs_for_one_drawn_parameter_set(sweep, harps_store, tmp_path, monkeypatch):
    spec = load_sweep(sweep)
    params = draw(spec, count=1)[0]
    cmd = command(spec, params)
    assert cmd[1:4] == ["-m", "spectra_lightning", "fit"] and cmd[-len(params) :] == [
        f"--{k}={v}" for k, v in params.items()
    ]
    # the sweep's configs are relative to the repository (where agents run); the test runs elsewhere
    args = [str(REPO / a) if prev == "--config" else a for prev, a in zip(cmd[2:], cmd[3:])]
    monkeypatch.chdir(tmp_path)
    built = built_models(monkeypatch)
    assert main(args + overrides_for(REPO / cmd[cmd.index("--config") + 1], harps_store)) == 0
    (model,) = built
    for key, value in params.items():  # the drawn values reached the model that trained
        node = model
        for part in key.split(".")[1:]:
            node = node[part]
        assert node == value, key


def tiny_sweep(tmp_path, store, values=(0.1, 1.0), latents=(2, 3)):
    base = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": False,
            "limit_train_batches": 3,
            "callbacks": [
                {
                    "class_path": "spectra_lightning.callbacks.LatentMetrics",
                    "init_args": {"figures_every_n_epochs": 0, "final_figures": False},
                }
            ],
        },
        "model": tiny_model(),
        "data": {
            "class_path": "spectra_lightning.data_modules.SpectraDataModule",
            "init_args": {"store": str(store), "batch_size": 16, "val_fraction": 0.3},
        },
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {
        "name": "tiny",
        "method": "grid",
        "parameters": {
            "model.kl_schedule.init_args.weight": {"values": list(values)},
            "model.net.init_args.latent_dim": {"values": list(latents)},
        },
        "command": [
            "${env}",
            "${interpreter}",
            "-m",
            "spectra_lightning",
            "fit",
            "--config",
            str(tmp_path / "base.yaml"),
            "${args}",
        ],
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_local_runner_grid_resume_failure_and_report(tmp_path, tiny_store):
    sweep = tiny_sweep(tmp_path, tiny_store, values=(0.1,), latents=(2, -1))  # latent -1 must fail
    out = tmp_path / "out"
    rows = run_sweep(str(sweep), str(out), parallel=2)
    assert len(rows) == 2
    status = {r["run"]: r["status"] for r in rows}
    assert status["kl_schedule.weight=0.1,net.latent_dim=2"] == "ok"
    assert status["kl_schedule.weight=0.1,net.latent_dim=-1"].startswith("failed")
    table = list(csv.DictReader(open(out / "results.csv")))
    assert len(table) == 2 and all(r["n_informative"] != "" for r in table if r["status"] == "ok")
    # sweeps compare the validation split; the report's claims are the test split's
    final = json.loads((out / "kl_schedule.weight=0.1,net.latent_dim=2" / "report.json").read_text())
    ok = next(r for r in table if r["run"] == "kl_schedule.weight=0.1,net.latent_dim=2")
    assert final["split"] == "test" and ok["split"] == "val"
    assert int(ok["n_informative"]) == len(final["validation"]["mad"]["informative"])
    # resume: a finished run is skipped (none runs twice), the failed one is run again
    rows = run_sweep(str(sweep), str(out), parallel=2)
    assert [r["run"] for r in rows] == ["kl_schedule.weight=0.1,net.latent_dim=-1"]
    assert len(list(csv.DictReader(open(out / "results.csv")))) == 3  # appended, the finished row kept
    paths = report(out)
    assert paths["figure4"].exists() and paths["mi"].exists()
    # the figure's points are the finished run's: its λ and latent size (from its report) and informative nodes
    (point,) = list(csv.DictReader(open(paths["figure4_table"])))
    assert point == {
        "latent_dim": "2",
        "kl_weight": "0.1",
        "n_informative": str(len(final["validation"]["mad"]["informative"])),
        "split": "val",
        "run": "kl_schedule.weight=0.1,net.latent_dim=2",
    }


def test_random_method_and_dry_run(tmp_path, capsys):
    spec = {
        "method": "random",
        "parameters": {
            "model.kl_schedule.init_args.weight": {"min": 0.1, "max": 10.0, "distribution": "log_uniform_values"},
            "model.net.init_args.latent_dim": {"values": [8, 32]},
        },
        "command": ["${env}", "${interpreter}", "-m", "spectra_lightning", "fit", "${args}"],
    }
    runs = draw(spec, count=20, seed=1)
    lam = np.array([r["model.kl_schedule.init_args.weight"] for r in runs])
    assert (
        len(runs) == 20
        and (lam >= 0.1).all()
        and (lam <= 10).all()
        and {r["model.net.init_args.latent_dim"] for r in runs} == {8, 32}
    )
    assert draw(spec, count=20, seed=1) == runs
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(path), "--dry-run", "--count", "3", "--dir", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.count("--model.kl_schedule.init_args.weight=") == 3
    bad = {**spec, "command": ["${interpreter}", "${args_no_hyphens}"]}
    with pytest.raises(ValueError, match="args_no_hyphens"):
        command(bad, runs[0])
