"""A run stopped from outside: non-zero exit, a current last.ckpt, and the same command with --ckpt_path goes on."""

import torch
import yaml

from spectra_lightning.cli import main

from helpers import tiny_config


def test_sigterm_mid_epoch_exits_non_zero_and_the_run_resumes(tmp_path, tiny_store, capsys):
    cfg = tiny_config(tmp_path, tiny_store, logger=False, max_epochs=2, limit_train_batches=4, limit_val_batches=1)
    spec = yaml.safe_load(cfg.read_text())
    spec["trainer"]["callbacks"] = [
        {"class_path": "stream_probe.SigtermAt", "init_args": {"step": 6, "marker": str(tmp_path / "sent")}}
    ]
    cfg.write_text(yaml.safe_dump(spec))
    assert main(["fit", "--config", str(cfg)]) == 143
    err = capsys.readouterr().err
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert err.count("\n") == 1 and "stopped by SIGTERM" in err and f"--ckpt_path {last}" in err
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6 and ckpt["epoch"] == 1  # mid-way through the second epoch
    assert not (tmp_path / "run" / "report.json").exists()
    assert main(["fit", "--config", str(cfg), "--ckpt_path", str(last)]) == 0
    done = max((tmp_path / "run" / "checkpoints").glob("epoch=1*.ckpt"))
    assert torch.load(done, map_location="cpu", weights_only=False)["global_step"] == 8


def test_ctrl_c_leaves_a_current_last_ckpt(tmp_path, tiny_store, capsys, monkeypatch):
    import lightning as L

    class Interrupt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                raise KeyboardInterrupt

    from spectra_lightning.cli import training as trainer_cli

    original = trainer_cli.SpectraCLI._instantiate_trainer
    monkeypatch.setattr(
        trainer_cli.SpectraCLI,
        "_instantiate_trainer",
        lambda self, config, callbacks: original(self, config, [*callbacks, Interrupt()]),
    )
    cfg = tiny_config(tmp_path, tiny_store, logger=False, max_epochs=2, limit_train_batches=4, limit_val_batches=1)
    import signal

    handler = signal.getsignal(signal.SIGINT)
    try:
        code = main(["fit", "--config", str(cfg)])
    except SystemExit as e:
        code = e.code
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning leaves Ctrl-C ignored after one
    assert code == 1
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
