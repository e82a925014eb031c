"""A checkpoint is data: nothing it names is imported or called unless it is ours or the user allowed it, and a
damaged one is refused — each through every command that reads a checkpoint, as one line with exit code 2."""

import json
import sys
import zipfile

import pytest
import torch

from spectra_lightning.cli import main

from helpers import tiny_config

OPTIONS = ("net", "loss", "kl_schedule", "optimizer")
# the module a hostile "subclass in a module not allowed" lives in: importing it leaves the marker too
EVIL_MODULE = """
from pathlib import Path
Path({marker!r}).touch()
from spectra_lightning.model.losses import Reconstruction
class Evil(Reconstruction):
    pass
"""


def hostile_specs(marker: str) -> dict[str, dict]:
    return {
        "os.system": {"class_path": "os.system", "init_args": {"command": f"touch {marker}"}},
        "subprocess.getoutput": {"class_path": "subprocess.getoutput", "init_args": {"cmd": f"touch {marker}"}},
        "builtins.eval": {"class_path": "builtins.eval", "init_args": {"source": f"open({marker!r}, 'w')"}},
        # ours, and a class, but not a subclass of any part's base
        "not a subclass": {"class_path": "spectra_lightning.store.lock.WriterLock", "init_args": {"path": marker}},
        "module not allowed": {"class_path": "evil_parts.Evil", "init_args": {}},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_store):
    """A checkpoint of a seconds-long fit, its codes, and its config."""
    tmp = tmp_path_factory.mktemp("safety")
    cfg = tiny_config(tmp, tiny_store, logger=False, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    assert main(["fit", "--config", str(cfg)]) == 0
    (ckpt,) = (tmp / "run" / "checkpoints").glob("*.ckpt")
    codes = tmp / "codes.zarr"
    assert main(["encode", "--ckpt", str(ckpt), "--store", str(tiny_store), "--output", str(codes), "--quiet"]) == 0
    return {"ckpt": ckpt, "codes": codes, "config": cfg, "store": tiny_store}


def commands(trained, ckpt, tmp_path) -> dict[str, list[str]]:
    cfg, store = str(trained["config"]), str(trained["store"])
    return {
        "encode": ["encode", "--ckpt", str(ckpt), "--store", store, "--output", str(tmp_path / "c.zarr"), "--quiet"],
        "explore": ["explore", "--ckpt", str(ckpt), "--codes", str(trained["codes"]), "--store", store],
        "fit": ["fit", "--config", cfg, f"--ckpt_path={ckpt}", "--trainer.max_epochs=3"],
        "validate": ["validate", "--config", cfg, f"--ckpt_path={ckpt}"],
    }


def refused_in_one_line(capsys, args, *needles):
    try:
        rc = main(list(args))
    except SystemExit as e:  # a parser error exits from inside LightningCLI
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("option", OPTIONS)
def test_a_hostile_part_spec_is_refused_before_anything_runs(option, trained, tmp_path, capsys, monkeypatch):
    marker = tmp_path / "PWNED"
    (tmp_path / "evil_parts.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))  # importable, so only the allow rule keeps it out
    monkeypatch.chdir(tmp_path)
    checkpoint = torch.load(trained["ckpt"], weights_only=True)
    for label, spec in hostile_specs(str(marker)).items():
        checkpoint["hyper_parameters"][option] = spec
        bad = tmp_path / "hostile.ckpt"
        torch.save(checkpoint, bad)
        why = "is not a subclass" if label == "not a subclass" else "is not a spectra_lightning class"
        for command, args in commands(trained, bad, tmp_path).items():
            err = refused_in_one_line(capsys, args, str(bad), f"--model.{option}", why)
            assert not marker.exists(), f"{label} in {option} ran through {command}: {err}"
    assert "evil_parts" not in sys.modules


def test_an_allowed_module_is_imported_only_once_allowed(trained, tmp_path, capsys, monkeypatch):
    """The refusal says how to allow a module; allowed, a subclass of it loads (the marker shows it imported)."""
    marker = tmp_path / "IMPORTED"
    (tmp_path / "own_parts.py").write_text(EVIL_MODULE.format(marker=str(marker)).replace("Evil", "Mine"))
    monkeypatch.syspath_prepend(str(tmp_path))
    checkpoint = torch.load(trained["ckpt"], weights_only=True)
    checkpoint["hyper_parameters"]["loss"] = {"class_path": "own_parts.Mine", "init_args": {"normalisation": "sum"}}
    own = tmp_path / "own.ckpt"
    torch.save(checkpoint, own)
    args = commands(trained, own, tmp_path)["encode"]
    refused_in_one_line(capsys, args, "--allow-module own_parts", "SPECTRA_LIGHTNING_ALLOW_MODULES=own_parts")
    assert not marker.exists()
    assert main([*args, "--allow-module", "own_parts"]) == 0
    assert marker.exists()


def test_a_checkpoint_whose_zip_entry_fails_its_crc_is_refused_naming_the_tensor(trained, tmp_path, capsys):
    data = bytearray(trained["ckpt"].read_bytes())
    with zipfile.ZipFile(trained["ckpt"]) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data/1"))
    # the entry's bytes start after its local header: 30 bytes, then the name and the local extra field
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + 3] ^= 0x40
    bad = tmp_path / "flipped.ckpt"
    bad.write_bytes(bytes(data))
    for args in commands(trained, bad, tmp_path).values():
        refused_in_one_line(capsys, args, "flipped.ckpt: damaged checkpoint", "fails its CRC-32", "net.encoder.")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_checkpoint_with_non_finite_weights_is_refused_naming_the_tensor(trained, tmp_path, capsys, value):
    checkpoint = torch.load(trained["ckpt"], weights_only=True)
    checkpoint["state_dict"]["net.decoder.linear.weight"][0, 0] = value
    bad = tmp_path / "nan.ckpt"
    torch.save(checkpoint, bad)
    for args in commands(trained, bad, tmp_path).values():
        refused_in_one_line(capsys, args, "nan.ckpt: tensor 'state_dict.net.decoder.linear.weight'", "non-finite")


def test_the_network_option_is_typed_as_a_class(trained, capsys):
    """On the command line too, a network must be a SpectrumNet subclass: a function is not parsed, let alone
    called."""
    refused_in_one_line(capsys, ["fit", "--config", str(trained["config"]), "--model.net=os.system"], "--model.net")
    for option in ("optimizer", "loss"):
        spec = json.dumps({"class_path": "subprocess.getoutput", "init_args": {"cmd": "true"}})
        refused_in_one_line(capsys, ["fit", "--config", str(trained["config"]), f"--model.{option}={spec}"], option)


def test_load_from_checkpoint_reads_as_data(trained, tmp_path):
    """Lightning's ``load_from_checkpoint`` imports and calls a checkpoint's ``_instantiator``; ours reads data."""
    from spectra_lightning.model.module import SpectrumAutoencoder

    marker = tmp_path / "PWNED"
    checkpoint = torch.load(trained["ckpt"], weights_only=True)
    checkpoint["hyper_parameters"]["_instantiator"] = "os.system"
    checkpoint["hyper_parameters"]["_class_path"] = f"touch {marker}"
    torch.save(checkpoint, tmp_path / "inst.ckpt")
    model = SpectrumAutoencoder.load_from_checkpoint(tmp_path / "inst.ckpt")
    assert not marker.exists() and not model.training and model.latent_dim == 4
    state = torch.load(trained["ckpt"], weights_only=True)["state_dict"]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
