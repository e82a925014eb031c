import numpy as np
import torch

from spectra_lightning.data_modules import SpectraDataModule
from spectra_lightning.data_modules.split import assign_splits
from spectra_lightning.ingest.synth import SynthSpec
from spectra_lightning.physics.labels import LABELS
from spectra_lightning.store import SpectraStore


def test_split_is_by_star_and_deterministic():
    """Whole stars in one set; the same in another process (Python's string hashing differs there: no rank or
    resumed run may draw another split); a star's set does not depend on the other spectra in the store."""
    import json
    import os
    import subprocess
    import sys

    meta = {"id": np.array([f"s{i}" for i in range(600)]), "object": np.array([f"star{i // 3}" for i in range(600)])}
    a = assign_splits(meta, 0.2, 0.1, seed=1)
    code = (
        "import json, numpy as np; from spectra_lightning.data_modules.split import assign_splits; "
        "m = {'id': np.array([f's{i}' for i in range(600)]), "
        "'object': np.array([f'star{i // 3}' for i in range(600)])}; "
        "print(json.dumps({k: v.tolist() for k, v in assign_splits(m, 0.2, 0.1, seed=1).items()}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    b = json.loads(other.stdout)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    grown = {key: np.concatenate([v, np.array([f"new{i}" for i in range(300)])]) for key, v in meta.items()}
    g = assign_splits(grown, 0.2, 0.1, seed=1)
    for k in a:
        np.testing.assert_array_equal(g[k][g[k] < 600], a[k])
    assert sum(len(v) for v in a.values()) == 600
    stars = {k: set(meta["object"][v]) for k, v in a.items()}
    assert (
        not (stars["train"] & stars["val"])
        and not (stars["train"] & stars["test"])
        and not (stars["val"] & stars["test"])
    )
    assert 0.1 < len(a["val"]) / 600 < 0.3
    c = assign_splits(meta, 0.2, 0.1, seed=2)
    assert not np.array_equal(a["val"], c["val"])


def test_split_falls_back_to_id_when_object_is_blank():
    meta = {"id": np.array([f"x{i}" for i in range(200)]), "object": np.array([""] * 200)}
    s = assign_splits(meta, 0.5, 0.0, seed=0)
    assert 50 < len(s["val"]) < 150  # not all in one set, as one shared blank name would give


def test_batches_carry_flux_mask_index_labels(tiny_store):
    dm = SpectraDataModule(store=str(tiny_store), batch_size=8, val_fraction=0.25)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["flux"].shape == (8, 512) and batch["mask"].dtype == torch.bool
    assert batch["labels"].shape == (8, len(LABELS))
    assert (batch["flux"][~batch["mask"]] == 0).all()
    grid_valid = dm.grid.valid
    assert (batch["mask"].numpy() <= grid_valid).all()
    seen = np.concatenate([b["index"].numpy() for b in dm.val_dataloader()])
    np.testing.assert_array_equal(np.sort(seen), dm.splits["val"])
    teff = dm.store.meta["teff"][batch["index"].numpy()]
    np.testing.assert_allclose(batch["labels"][:, LABELS.index("teff")].numpy(), teff, rtol=1e-6)


def test_a_synthetic_store_being_made_by_another_run_is_waited_for(tmp_path, monkeypatch, capsys):
    """Parallel sweep runs of one spec share its cached store: the second waits instead of failing."""
    import subprocess
    import sys

    monkeypatch.setenv("SPECTRA_LIGHTNING_CACHE", str(tmp_path))
    dm = SpectraDataModule(synth=SynthSpec(n=40, seed=7, grid="tiny"), batch_size=8)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from spectra_lightning.store.lock import WriterLock; "
            "l = WriterLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(2); l.release()",
            dm.store_path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        dm.prepare_data()  # waits ~2 s for the holder, then makes the store itself
    finally:
        holder.kill()
        holder.wait()
    assert "waiting: " in capsys.readouterr().out
    assert SpectraStore.open(dm.store_path).n == 40
