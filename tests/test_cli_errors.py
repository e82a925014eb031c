"""One clear line for every plausible mistake: no traceback, no usage dump, nothing silently accepted."""

from pathlib import Path

import pytest
import yaml
from test_cli import tiny_config

from spectra_lightning.cli import main
from spectra_lightning.store import SpectraStore

REPO = Path(__file__).resolve().parents[1]


def fails_in_one_line(capsys, args, *needles, code=2):
    """``main(args)`` exits with ``code`` and prints exactly one line on stderr, containing ``needles``."""
    try:
        rc = main(args)
    except SystemExit as e:
        rc = e.code
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert rc == code, err
    assert len(err) == 1, "\n".join(err)
    assert "Traceback" not in err[0]
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def test_fit_help_names_the_program_as_typed(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    assert capsys.readouterr().out.startswith("usage: python -m spectra_lightning fit")


def test_parser_errors_are_one_line_with_a_pointer_to_help(tmp_path, tiny_store, capsys):
    cfg = tiny_config(tmp_path, tiny_store, logger=False)
    fails_in_one_line(
        capsys,
        ["fit", "--config", str(cfg), "--model.kl_schedule.init_args.wieght=3"],
        "--model.kl_schedule: Option 'wieght' is not accepted",
        "python -m spectra_lightning fit --help",
    )


@pytest.mark.parametrize(
    "override, needles",
    [
        ("--model.kl_schedule.init_args.weight=-1", ["--model.kl_schedule weight must be >= 0, got -1"]),
        (
            '--model.kl_schedule={"class_path": "LinearWarmup", "init_args": {"length": 30}}',
            ["--model.kl_schedule length must be in 0..1 (unit: fraction), got 30"],
        ),
        ("--model.net.init_args.depth=12", ["depth 12 is too deep for 512 px", "use depth <= 11"]),
        ("--data.init_args.batch_size=0", ["--data.init_args.batch_size must be >= 1, got 0"]),
        ("--model.net.init_args.latent_dim=abc", ["--model.net.latent_dim: expected an integer, got 'abc'"]),
        ("--trainer.max_epochs=0", ["--trainer.max_epochs=0: nothing would be trained"]),
        ("--trainer.max_steps=0", ["--trainer.max_steps=0: nothing would be trained"]),
        ("--trainer.max_epochs=1", None),  # the control: the same command otherwise runs
    ],
)
def test_bad_settings_are_one_line(tmp_path, tiny_store, capsys, override, needles):
    cfg = tiny_config(tmp_path, tiny_store, logger=False, limit_train_batches=1, limit_val_batches=1)
    if needles is None:
        assert main(["fit", "--config", str(cfg), override]) == 0
        return
    fails_in_one_line(capsys, ["fit", "--config", str(cfg), override], *needles)


def test_a_filter_on_a_missing_column(tmp_path, tiny_store, capsys):
    cfg = tiny_config(tmp_path, tiny_store, logger=False)
    data = yaml.safe_load(cfg.read_text())
    data["data"]["class_path"] = "spectra_lightning.data_modules.StreamingSpectraDataModule"
    data["data"]["init_args"]["filters"] = ["airmass < 2"]
    cfg.write_text(yaml.safe_dump(data))
    fails_in_one_line(capsys, ["fit", "--config", str(cfg)], "filter 'airmass < 2': no metadata column 'airmass'")


def test_the_paper_config_without_a_store(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SPECTRA_LIGHTNING_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    fails_in_one_line(
        capsys,
        ["fit", "--config", str(REPO / "experiments/harps_paper.yaml")],
        "no data: give a store (--data.init_args.store=PATH_OR_URL",
    )


def test_a_mistyped_store_never_becomes_synthetic_data(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fails_in_one_line(
        capsys,
        [
            "fit",
            "--config",
            str(REPO / "experiments/quickstart.yaml"),
            "--data.init_args.store=nope.zarr",
            "--trainer.logger=false",
        ],
        "nope.zarr: no store there",
    )
    assert not (tmp_path / "nope.zarr").exists()


def test_a_missing_or_foreign_checkpoint(tmp_path, tiny_store, capsys):
    cfg = tiny_config(tmp_path, tiny_store, logger=False)
    fails_in_one_line(
        capsys,
        ["fit", "--config", str(cfg), f"--ckpt_path={tmp_path / 'gone.ckpt'}"],
        "gone.ckpt: no such checkpoint file",
    )
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    fails_in_one_line(
        capsys,
        ["fit", "--config", str(cfg), f"--ckpt_path={tmp_path / 'junk.ckpt'}"],
        "junk.ckpt: not a loadable spectra_lightning checkpoint",
    )


def test_resuming_on_a_store_of_another_grid(tmp_path, tiny_store, capsys):
    cfg = tiny_config(tmp_path, tiny_store, logger=False, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    assert main(["fit", "--config", str(cfg)]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    if not ckpt.exists():
        ckpt = next((tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    from spectra_lightning.ingest.synth import SynthSpec, synthesize

    other = tmp_path / "other.zarr"
    synthesize(str(other), SynthSpec(n=40, seed=1, grid="quickstart"), progress=False)
    capsys.readouterr()
    fails_in_one_line(
        capsys,
        [
            "fit",
            "--config",
            str(cfg),
            f"--data.init_args.store={other}",
            f"--ckpt_path={ckpt}",
            "--trainer.max_epochs=2",
        ],
        "is not the one the model was trained on",
        "(8192 px)",
    )
    assert SpectraStore.open(other).n == 40


def test_synth_refuses_an_unknown_rv_distribution(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["synth", "--output", str(tmp_path / "s.zarr"), "--rv-dist", "gaussianish"])
    assert e.value.code == 2 and "invalid choice: 'gaussianish'" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists()


def test_a_config_with_a_tab_names_the_file_and_line(tmp_path, tiny_store, capsys):
    cfg = tiny_config(tmp_path, tiny_store, logger=False)
    text = cfg.read_text().replace("\n  devices", "\n\tdevices")
    lines = text.splitlines()
    tab_line = next(i for i, line in enumerate(lines) if line.startswith("\t")) + 1
    cfg.write_text(text)
    fails_in_one_line(
        capsys, ["fit", "--config", str(cfg)], f"{cfg}: line {tab_line}, column 1", "YAML indents with spaces, not tabs"
    )


def test_lightnings_own_optimizer_options_point_to_the_models(tmp_path, tiny_store, capsys):
    """LightningCLI's --optimizer silently replaced model.optimizer; this CLI says where the optimizer is set."""
    cfg = tiny_config(tmp_path, tiny_store, logger=False)
    for option in ("--optimizer=Adam", "--lr_scheduler=StepLR"):
        fails_in_one_line(capsys, ["fit", "--config", str(cfg), option], "is --model.")


def test_the_version_is_the_installed_one(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"spectra_lightning {version('spectra-lightning')}"


def test_the_streaming_module_takes_no_in_memory(tmp_path, tiny_store, capsys):
    """It used to accept in_memory and ignore it: an option that exists does what it says, or is not there."""
    streaming = {"class_path": "spectra_lightning.data_modules.StreamingSpectraDataModule"}
    cfg = tiny_config(tmp_path, tiny_store, logger=False)
    text = yaml.safe_load(cfg.read_text())
    text["data"]["class_path"] = streaming["class_path"]
    text["data"]["init_args"]["in_memory"] = True
    cfg.write_text(yaml.safe_dump(text))
    fails_in_one_line(capsys, ["fit", "--config", str(cfg)], "'in_memory' is not accepted")
