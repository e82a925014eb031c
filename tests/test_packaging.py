"""What an installed wheel claims, and configs written with the old package names."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from spectra_lightning.cli import main

from helpers import REPO, tiny_config


def test_the_wheel_claims_only_the_spectra_lightning_name(tmp_path):
    src, out = tmp_path / "src", tmp_path / "wheel"  # a copy: setuptools leaves build/ in the tree it builds
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("spectra_lightning", "data_modules", "callbacks"):
        shutil.copytree(REPO / part, src / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, src / part)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = out.glob("spectra_lightning-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"spectra_lightning"}
    # every source module is in it (a subpackage missing from the package list was not: readers/, 0.2)
    sources = {
        f"spectra_lightning/{p.relative_to(REPO / 'spectra_lightning')}"
        for p in (REPO / "spectra_lightning").rglob("*.py")
    }
    for folder in ("callbacks", "data_modules"):
        sources |= {f"spectra_lightning/{folder}/{p.relative_to(REPO / folder)}" for p in (REPO / folder).rglob("*.py")}
    sources = {name for name in sources if "__pycache__" not in name}
    assert sources - set(names) == set()
    assert {"spectra_lightning/ingest/readers/sdss.py", "spectra_lightning/py.typed"} <= set(names)
    assert "spectra_lightning/explorer/static/index.html" in names


def test_an_old_config_naming_top_level_packages_still_runs_with_a_warning(tmp_path, tiny_store):
    cfg = tiny_config(tmp_path, tiny_store, logger=False)
    text = cfg.read_text().replace("spectra_lightning.data_modules.", "data_modules.")
    assert "class_path: data_modules.SpectraDataModule" in text
    cfg.write_text(text)
    with pytest.warns(
        FutureWarning,
        match=r"'data_modules.SpectraDataModule' is now "
        r"'spectra_lightning.data_modules.SpectraDataModule'",
    ):
        assert main(["fit", "--config", str(cfg), "--trainer.fast_dev_run=true"]) == 0


def test_a_checkpoint_of_0_4_loads_and_encodes_the_same():
    """tests/data/format2_tiny_warp_0.4.ckpt was written by 0.4 (its parts named spectra_lightning.nets.…,
    .losses.…, .kl_schedules.…) with what it encoded then: today's package reads it silently, the same."""
    import warnings

    import numpy as np
    import torch

    from spectra_lightning.model.checkpoints import load_model

    data = REPO / "tests" / "data"
    saved = torch.load(data / "format2_tiny_warp_0.4.ckpt", weights_only=True)["hyper_parameters"]
    assert saved["net"]["class_path"] == "spectra_lightning.nets.ConvAutoencoder"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint is not the user's to update: no warning
        model = load_model(data / "format2_tiny_warp_0.4.ckpt", torch.device("cpu"))
    assert model.hparams["net"]["class_path"] == "spectra_lightning.model.nets.ConvAutoencoder"
    assert type(model.loss).__name__ == "SquaredError" and model.loss.noise_scale == 0.05
    want = np.load(data / "format2_tiny_warp_0.4.npz")
    with torch.no_grad():
        recon, mu, logvar = model(torch.from_numpy(want["flux"]))
    np.testing.assert_allclose(mu.numpy(), want["mu"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logvar.numpy(), want["logvar"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(recon.numpy(), want["recon"], rtol=1e-5, atol=1e-5)


def test_a_config_naming_0_4_module_paths_still_runs_with_a_warning(tmp_path, tiny_store):
    """Module paths that moved in 0.5 (spectra_lightning.nets, .losses, .kl_schedules, .loggers) import for one
    release: the run trains the same classes, and says where they live now."""
    from spectra_lightning.common.errors import MovedWarning

    cfg = tiny_config(tmp_path, tiny_store, logger=False)
    text = cfg.read_text()
    for new, old in (("model.nets", "nets"), ("model.losses", "losses"), ("model.kl_schedules", "kl_schedules")):
        text = text.replace(f"spectra_lightning.{new}.", f"spectra_lightning.{old}.")
    assert "class_path: spectra_lightning.nets.ConvAutoencoder" in text
    cfg.write_text(text)
    with pytest.warns(MovedWarning) as caught:
        assert main(["fit", "--config", str(cfg), "--trainer.fast_dev_run=true"]) == 0
    said = {str(w.message) for w in caught}
    for old in ("nets", "losses", "kl_schedules"):
        assert f"'spectra_lightning.{old}' is now 'spectra_lightning.model.{old}': update the import or config" in said


def test_every_third_party_module_the_package_imports_is_a_declared_dependency():
    """PyYAML and fsspec were imported but not declared; a module found only through another's dependencies breaks
    when that one drops it."""
    import ast
    import importlib.metadata
    import re
    import sys

    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    imported = set()
    for folder in ("spectra_lightning", "data_modules", "callbacks"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"spectra_lightning"}
    dists = importlib.metadata.packages_distributions()
    undeclared = {m: dists.get(m) for m in third_party if not {d.lower() for d in dists.get(m, [])} & declared}
    assert undeclared == {} and {"yaml", "fsspec", "torch"} <= third_party
