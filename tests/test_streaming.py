"""The streaming DataModule: exactly-once epochs over ranks and workers, DDP, resume, augmentations."""

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch

from spectra_lightning.data_modules import StreamingSpectraDataModule
from spectra_lightning.data_modules.streaming import (
    Augment,
    BlockStream,
    apply_filters,
    balance_weights,
    epoch_rows,
    one_per_object,
    worker_share,
)
from spectra_lightning.ingest.synth import C_KMS, render
from spectra_lightning.physics.grid import SpectralGrid
from spectra_lightning.store import SpectraStore
from spectra_lightning.store.batch import finish_batch

from helpers import ddp_fit_checks, streaming_config


def test_epoch_order_is_deterministic_and_pieces_cover_each_row_once():
    rows = np.sort(np.random.default_rng(0).choice(1000, 700, replace=False))
    a = epoch_rows(rows, 64, seed=1, epoch=0, shuffle=True)
    assert np.array_equal(a, epoch_rows(rows, 64, seed=1, epoch=0, shuffle=True))
    assert not np.array_equal(a, epoch_rows(rows, 64, seed=1, epoch=1, shuffle=True))
    assert np.array_equal(np.sort(a), rows)
    shards = a // 64  # whole shards stay together
    assert (np.diff(shards) != 0).sum() == len(np.unique(shards)) - 1
    got = [worker_share(a, p, 6) for p in range(6)]
    assert len({len(r) for r, _ in got}) == 1
    real = np.concatenate([r[w > 0] for r, w in got])
    assert Counter(real.tolist()) == Counter(rows.tolist())


def batches(dm, name="train", epoch=0):
    loader = dm.train_dataloader() if name == "train" else dm.val_dataloader()
    loader.epoch_fn = lambda: epoch
    return list(loader)


@pytest.fixture
def dm(tiny_store):
    d = StreamingSpectraDataModule(
        store=str(tiny_store), batch_size=8, val_fraction=0.2, shuffle_buffer=16, num_workers=2
    )
    d.setup("fit")
    return d


def test_workers_see_every_spectrum_exactly_once(dm):
    out = batches(dm)
    assert len(out) == len(dm.train_dataloader())
    real = np.concatenate([b["index"][b["weight"] > 0].numpy() for b in out])
    assert Counter(real.tolist()) == Counter(dm.splits["train"].tolist())
    b = out[0]
    # the stored float16 rows travel as they are (NaN = masked); the model completes them on the device
    assert b["flux"].dtype == torch.float16 and "mask" not in b and b["labels"].shape[1] == 6
    nan = torch.isnan(b["flux"])
    stored = SpectraStore.open(dm.store_path).read(b["index"].numpy())
    assert torch.equal(nan, torch.from_numpy(np.isnan(stored))) and nan.any()
    done = finish_batch(dict(b))
    assert done["flux"].dtype == torch.float32 and torch.equal(done["mask"], ~nan)
    assert (done["flux"][nan] == 0).all() and torch.equal(done["flux"][~nan], b["flux"][~nan].float())
    again = np.concatenate([b["index"].numpy() for b in batches(dm, epoch=0)])
    other = np.concatenate([b["index"].numpy() for b in batches(dm, epoch=1)])
    assert np.array_equal(again, np.concatenate([b["index"].numpy() for b in out]))  # deterministic
    assert not np.array_equal(again, other)  # reshuffled per epoch


def test_simulated_ranks_get_equal_steps_and_disjoint_spectra(dm, monkeypatch):
    per_rank = []
    for rank in range(3):
        monkeypatch.setattr(BlockStream, "world", staticmethod(lambda r=rank: (r, 3)))
        per_rank.append(batches(dm))
    assert len({len(b) for b in per_rank}) == 1
    real = np.concatenate([b["index"][b["weight"] > 0].numpy() for bs in per_rank for b in bs])
    assert Counter(real.tolist()) == Counter(dm.splits["train"].tolist())


def test_fsspec_urls_stream_the_same_batches(tiny_store):
    fs = fsspec.filesystem("memory")
    for f in Path(tiny_store).rglob("*"):
        if f.is_file():
            fs.pipe(f"/mem-{os.getpid()}/tiny.zarr/" + str(f.relative_to(tiny_store)), f.read_bytes())
    kw = dict(batch_size=8, val_fraction=0.2, shuffle_buffer=16)
    ref = [b["index"] for b in batches(_setup(StreamingSpectraDataModule(store=str(tiny_store), **kw)))]
    for url in (f"file://{tiny_store}", f"memory://mem-{os.getpid()}/tiny.zarr"):
        got = batches(_setup(StreamingSpectraDataModule(store=url, **kw)))
        assert all(torch.equal(a, b["index"]) for a, b in zip(ref, got)) and len(got) == len(ref)


def _setup(d):
    d.setup("fit")
    return d


def test_selection_options(tiny_store):
    d = _setup(
        StreamingSpectraDataModule(
            store=str(tiny_store),
            batch_size=8,
            val_fraction=0.2,
            filters=["teff > 5000", "logg >= 3.5"],
            one_per_object=True,
        )
    )
    meta = d.store.meta
    rows = np.concatenate(list(d.splits.values()))
    assert (meta["teff"][rows] > 5000).all() and (meta["logg"][rows] >= 3.5).all()
    assert len(set(meta["object"][rows])) == len(rows)  # 2 spectra per star in the store, 1 kept
    assert d.selection["train"]["after"] < d.selection["train"]["before"]
    with pytest.raises(ValueError, match="no metadata column 'nope'"):
        apply_filters(meta, rows, ["nope > 1"])
    with pytest.raises(ValueError, match="not a number"):
        apply_filters(meta, rows, ["teff >> 1"])
    with pytest.raises(ValueError, match="expected"):
        apply_filters(meta, rows, ["teff"])
    keys = np.array(["a", "a", "b"])
    assert one_per_object({"snr": np.array([5.0, 9.0, 1.0])}, np.arange(3), keys).tolist() == [1, 2]
    v = np.r_[np.zeros(90), np.ones(10)]
    p = balance_weights(v, 2)
    assert p[:90].sum() == pytest.approx(0.5) and p[90:].sum() == pytest.approx(0.5)


def test_doppler_augmentation_moves_lines_by_v_over_c_and_updates_rv():
    grid = SpectralGrid(5368.0, 5375.0, 0.001, 7040, mask_gap=False)
    lab = {k: np.array([v]) for k, v in dict(teff=5777.0, logg=4.44, feh=0.0, rv=0.0, vsini=1.0, snr=100.0).items()}
    flux = render(grid, lab, None).astype(np.float32)
    aug = Augment(doppler_kms=40.0)
    out, labels, _ = aug(
        flux, np.array([[0.0, 100.0]], np.float32), ["rv", "snr"], grid.wavelength, np.random.default_rng(3)
    )
    v = float(labels[0, 0])
    assert v != 0.0 and labels[0, 1] == 100.0
    w = grid.wavelength

    def centre(f, guess):
        near = np.flatnonzero(np.isfinite(f) & (np.abs(w - guess) < 0.05))
        i = near[np.argmin(f[near])]
        y0, y1, y2 = f[i - 1], f[i], f[i + 1]
        return w[i] + 0.5 * grid.step * (y0 - y2) / (y0 - 2 * y1 + y2)

    line = 5371.49
    assert centre(out[0].astype(float), line * (1 + v / C_KMS)) - centre(flux[0].astype(float), line) == pytest.approx(
        line * v / C_KMS, abs=1e-3
    )


def test_rest_frame_velocities_become_the_rv_label_and_validation_shifts_are_fixed(tiny_store):
    flux = np.ones((3, 50), np.float32)
    labels = np.array([[np.nan, 5000.0], [12.0, 6000.0], [np.nan, 4000.0]], np.float32)
    wave = np.linspace(5000.0, 5010.0, 50)
    rng = np.random.default_rng(7)
    _, got, _ = Augment(doppler_kms=300.0, rest_frame=True)(flux, labels, ["rv", "teff"], wave, rng)
    v = np.random.default_rng(7).uniform(-300.0, 300.0, 3)
    np.testing.assert_allclose(got[:, 0], v, rtol=1e-6)  # the injected v is the label, NaN or not before
    np.testing.assert_array_equal(got[:, 1], labels[:, 1])
    _, shifted, _ = Augment(doppler_kms=300.0)(flux, labels, ["rv", "teff"], wave, np.random.default_rng(7))
    assert np.isnan(shifted[0, 0]) and shifted[1, 0] == pytest.approx(12.0 + v[1])
    dm = StreamingSpectraDataModule(
        store=str(tiny_store),
        batch_size=8,
        val_fraction=0.3,
        val_doppler_kms=100.0,
        rest_frame=True,
        labels=["rv", "teff"],
    )
    dm.setup()
    epochs = []
    for epoch in (0, 3):
        loader = dm.val_dataloader()
        loader.dataset.epoch = epoch
        epochs.append(np.concatenate([b["labels"][:, 0].numpy() for b in loader.dataset]))
    assert np.abs(epochs[0]).max() <= 100.0 and np.std(epochs[0]) > 20.0
    np.testing.assert_array_equal(epochs[0], epochs[1])  # the same validation velocities every epoch


def test_noise_and_masking_augmentations():
    flux = np.ones((4, 1000), np.float32)
    labels = np.full((4, 1), 50.0, np.float32)
    out, lab, _ = Augment(noise=0.05)(flux, labels, ["snr"], np.arange(1000.0), np.random.default_rng(0))
    sigma = out.std(axis=1)
    np.testing.assert_allclose(lab[:, 0], 1 / np.sqrt(1 / 50.0**2 + sigma**2), rtol=0.1)
    out, _, _ = Augment(mask_segments=2, mask_length=100)(
        flux, labels, ["snr"], np.arange(1000.0), np.random.default_rng(0)
    )
    hidden = np.isnan(out).sum(axis=1)
    assert ((hidden >= 100) & (hidden <= 200)).all()


@pytest.mark.slow  # the default suite runs these checks from a bucket (test_s3.py): one DDP fit, not two
def test_two_process_ddp_sees_each_training_spectrum_once_per_epoch_and_reports_the_whole_test_split(tmp_path):
    from spectra_lightning.ingest.synth import SynthSpec, synthesize

    store = tmp_path / "one_per_star.zarr"  # one spectrum per star: a split of odd size exists
    synthesize(str(store), SynthSpec(n=120, seed=4, grid="tiny"), progress=False)
    ddp_fit_checks(tmp_path, str(store))


def test_resume_mid_epoch_keeps_the_split(tmp_path, tiny_store, monkeypatch):
    from spectra_lightning.cli import main

    monkeypatch.chdir(tmp_path)
    cfg = streaming_config(tmp_path, tiny_store, max_epochs=1, limit_train_batches=3)
    assert main(["fit", "--config", str(cfg)]) == 0
    ckpt = next((tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    first = json.loads((tmp_path / "run" / "probe_rank0.json").read_text())["val_split"]
    shutil.move(tmp_path / "run", tmp_path / "run1")
    resume = [
        "fit",
        "--config",
        str(cfg),
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=5",
        "--data.init_args.split_seed=99",
        f"--ckpt_path={tmp_path / 'run1' / ckpt.relative_to(tmp_path / 'run')}",
    ]
    assert main(resume) == 0
    resumed = json.loads((tmp_path / "run" / "probe_rank0.json").read_text())["val_split"]
    assert resumed == first
    # without the checkpoint the other seed gives another split (one step is enough to record it)
    fresh = [
        "fit",
        "--config",
        str(cfg),
        "--data.init_args.split_seed=99",
        "--trainer.default_root_dir=fresh",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
    ]
    assert main(fresh) == 0
    fresh = json.loads((tmp_path / "fresh" / "probe_rank0.json").read_text())["val_split"]
    assert fresh != first


def test_the_augmentations_carry_inverse_variances_as_the_noise_moves():
    """A shift moves each pixel's variance with its flux ((1−f)²σ₀² + f²σ₁²): by simulation, the spread of 4,000
    shifted noise draws is what the moved ivar says; added noise adds its σ² to every pixel of its row; beyond the
    edges the ivar is NaN (zeroed with the masked flux by finish_batch)."""

    class FixedVelocity:  # the generator's draw of v, fixed: every row shifted alike
        def uniform(self, lo, hi, n):
            return np.full(n, 17.3)

    rng = np.random.default_rng(0)
    wave = np.linspace(5000.0, 5100.0, 400)
    sigma = rng.uniform(0.01, 0.05, 400)
    ivar = np.repeat((1 / sigma**2)[None], 4000, 0).astype(np.float32)
    flux = (1 + rng.standard_normal((4000, 400)) * sigma).astype(np.float32)
    labels = np.zeros((4000, 1), np.float32)
    out, _, moved = Augment(doppler_kms=30.0)(flux, labels, ["rv"], wave, FixedVelocity(), ivar)
    inside = np.isfinite(out[0])
    assert np.isnan(moved[:, ~inside]).all() and inside.sum() > 350
    ratio = out[:, inside].var(axis=0) * moved[0, inside]  # measured variance / predicted
    assert abs(np.median(ratio) - 1) < 0.03 and np.all(np.abs(ratio - 1) < 0.15)
    noisy, _, after = Augment(noise=0.05)(flux[:8], labels[:8], ["rv"], wave, np.random.default_rng(1), ivar[:8])
    added = 1 / after - 1 / ivar[:8]  # σ² of each row's added noise, the same along the row
    assert np.allclose(added, added[:, :1], rtol=1e-3, atol=1e-7) and ((added > 0) & (added <= 0.05**2 + 1e-7)).all()
