from pathlib import Path

import numpy as np
import pytest
import torch

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.metrics.latent import kl_to_prior
from spectra_lightning.model.kl_schedules import CapacityAnnealing, Constant, LinearWarmup
from spectra_lightning.model.losses import AbsoluteError, Reconstruction, SquaredError
from spectra_lightning.model.module import SpectrumAutoencoder
from spectra_lightning.model.nets import ConvAutoencoder

NET = {"class_path": "spectra_lightning.model.nets.ConvAutoencoder", "init_args": {"latent_dim": 4, "depth": 4}}


def small(**kw):
    return SpectrumAutoencoder(net=NET, n_pixels=64, loss=kw.pop("loss", AbsoluteError("sum")), **kw)


def batch(b=3, length=64):
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[:, :10] = False
    return {"flux": torch.randn(b, length), "mask": mask, "index": torch.arange(b), "labels": torch.zeros(b, 2)}


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    assert torch.allclose(kl_to_prior(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2, 3))
    # analytic: KL(N(1, e^{-1}) || N(0,1)) = 0.5 (1 + e^-1 - 1 + 1); numpy and torch give the same
    kl = kl_to_prior(torch.ones(1, 1), -torch.ones(1, 1))
    assert kl.item() == pytest.approx(0.5 * (1 + np.exp(-1.0)))
    assert float(kl_to_prior(np.ones(1), -np.ones(1))[0]) == pytest.approx(kl.item())


def test_masked_pixels_get_zero_gradient():
    model = small()
    b = batch()
    flux = b["flux"].clone().requires_grad_(True)
    recon, _, _ = model(flux)
    loss = model.loss(recon, {**b, "flux": flux}).mean()
    (grad_recon,) = torch.autograd.grad(loss, recon, retain_graph=True)
    assert (grad_recon[:, :10] == 0).all() and (grad_recon[:, 10:] != 0).all()


def test_reconstruction_errors_and_normalisations():
    recon, flux = torch.zeros(2, 8), torch.ones(2, 8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 4:] = False
    b = {"flux": flux, "mask": mask}
    assert AbsoluteError("sum")(recon, b).tolist() == [8.0, 4.0]
    assert AbsoluteError("mean")(recon, b).tolist() == [1.0, 1.0]
    # squared: r²/(2σ) per pixel, equal to |r| at |r| = 2σ
    assert SquaredError(0.5, "sum")(recon, b).tolist() == [8.0, 4.0]
    assert SquaredError(0.5, "mean")(recon, {**b, "flux": 0.5 * flux}).tolist() == [0.25, 0.25]
    with pytest.raises(ConfigError, match="normalisation must be 'sum' or 'mean', got 'paper'"):
        AbsoluteError("paper")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="noise_scale must be > 0"):
        SquaredError(0.0)


def test_deterministic_model_has_no_kl_and_uses_mu():
    model = small(variational=False, kl_schedule=Constant(5.0))
    model.train()
    b = batch()
    loss, mu, _ = model._shared_step(b, "train")
    expected = AbsoluteError("sum")(model.net.decode(mu), b).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert model.current_kl_weight == 0.0


def test_variational_samples_in_training_only():
    torch.manual_seed(0)
    model = small()
    x = torch.randn(2, 64)
    model.eval()
    a, _, _ = model(x)
    b, _, _ = model(x)
    assert torch.equal(a, b)
    model.train()
    c, _, _ = model(x)
    assert not torch.equal(a, c)


def test_a_linear_warmup_in_steps_and_in_fractions():
    steps = LinearWarmup(3.0, start=10, length=20, unit="steps")
    assert [steps.kl_weight(t, None) for t in (0, 10, 20, 30, 10_000)] == [0.0, 0.0, 1.5, 3.0, 3.0]
    frac = LinearWarmup(3.0, start=0.1, length=0.2, unit="fraction")
    assert [frac.kl_weight(t, 100) for t in (0, 10, 20, 30)] == [0.0, 0.0, 1.5, 3.0]
    assert LinearWarmup(0.3, 0, 0).kl_weight(5, 100) == 0.3  # length 0: λ from the start
    assert Constant(2.0).kl_weight(0, None) == 2.0
    # units by name, never by the size of a float: a fraction above 1 is an error, not a step count
    with pytest.raises(ConfigError, match=r"length must be in 0..1 \(unit: fraction\), got 5000"):
        LinearWarmup(0.3, length=5000)
    with pytest.raises(ConfigError, match="unit must be 'fraction' or 'steps'"):
        LinearWarmup(0.3, unit="epochs")  # type: ignore[arg-type]


def test_capacity_annealing_grows_its_target_then_hands_over_to_the_plain_kl():
    s = CapacityAnnealing(weight=5.0, capacity=2.0, grow=0.5, capacity_weight=30.0, until=0.75)
    assert [s.target(t, 100) for t in (0, 25, 50, 74, 75)] == [0.0, 1.0, 2.0, 2.0, None]
    kl = torch.tensor(3.0)
    assert float(s.term(kl, 25, 100)) == 30.0 * 2.0 and float(s.term(kl, 80, 100)) == 5.0 * 3.0
    assert s.kl_weight(25, 100) == 5.0  # what val/loss uses throughout
    forever = CapacityAnnealing(weight=5.0, capacity=2.0, grow=10, capacity_weight=1.0, until=None, unit="steps")
    assert forever.target(10**6, None) == 2.0


def test_eval_step_returns_the_codes_of_the_batch():
    model = small()
    model.eval()
    b = batch()
    reversed_batch = {k: v.flip(0) for k, v in b.items()}
    out = model.validation_step(b, 0)
    # each row's code is its own spectrum's: encoded alone, and in a batch in the reverse order
    with torch.no_grad():
        alone = [model.net.encode(b["flux"][i : i + 1]) for i in range(3)]
        flipped = model.validation_step(reversed_batch, 0)
    for i, (mu, logvar) in enumerate(alone):
        torch.testing.assert_close(out["mu"][i : i + 1], mu, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out["logvar"][i : i + 1], logvar, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(flipped["mu"], out["mu"].flip(0), rtol=1e-5, atol=1e-6)
    assert out["index"].tolist() == [0, 1, 2] and flipped["index"].tolist() == [2, 1, 0]
    torch.testing.assert_close(out["labels"], b["labels"])


@pytest.mark.parametrize(
    "fixture, hparams",
    [
        # written 2026-11-29 by the code before CHECKPOINT_FORMAT: a 4-node VAE with a Doppler node, 512-px tiny grid
        ("format0_tiny_doppler", {"doppler_node": 0}),
        # written 2026-12-03 by format 1 (flat module options): warp, squared error, capacity annealing
        ("format1_tiny_warp", {"warp_knots": 3}),
    ],
)
def test_checkpoints_of_older_formats_load_and_encode_the_same(tmp_path, fixture, hparams):
    """tests/data/<fixture>.ckpt and the .npz of what it gave then for three inputs: read through today's parts."""
    from spectra_lightning.model.checkpoint_file import CHECKPOINT_FORMAT
    from spectra_lightning.model.checkpoints import load_model
    from spectra_lightning.model.legacy import upgrade_hparams

    data = Path(__file__).parent / "data"
    old = torch.load(data / f"{fixture}.ckpt", weights_only=True)
    assert old.get("spectra_lightning_format", 0) < 2 and "latent_dim" in old["hyper_parameters"]
    model = load_model(data / f"{fixture}.ckpt", torch.device("cpu"))
    for key, value in hparams.items():
        assert model.hparams.net["init_args"][key] == value
    want = np.load(data / f"{fixture}.npz")
    with torch.no_grad():
        recon, mu, logvar = model(torch.from_numpy(want["flux"]))
    np.testing.assert_allclose(mu.numpy(), want["mu"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logvar.numpy(), want["logvar"], rtol=1e-5, atol=1e-6)
    # the shift operators' interpolation weights no longer lose float32 precision to i − d (0.3: ~1e-5 at 512 px,
    # 1.5 % of a pixel step at 327,680; tests/test_nets.py), so a Doppler node's or a warp's output moves by that
    np.testing.assert_allclose(recon.numpy(), want["recon"], rtol=1e-5, atol=5e-5)
    if fixture == "format1_tiny_warp":  # the schedule and loss come back as the parts they were
        up = upgrade_hparams(old["hyper_parameters"])
        assert up["kl_schedule"] == {
            "class_path": "spectra_lightning.model.kl_schedules.CapacityAnnealing",
            "init_args": {
                "weight": 6.0,
                "capacity": 2.0,
                "grow": 0.5,
                "capacity_weight": 30.0,
                "until": 0.75,
                "unit": "fraction",
            },
        }
        assert up["loss"]["class_path"].endswith("SquaredError") and up["loss"]["init_args"]["noise_scale"] == 0.02
        assert type(model.kl_schedule) is CapacityAnnealing and model.kl_schedule.capacity_weight == 30.0
    # a newer format than this code reads is refused in one line
    torch.save({**old, "spectra_lightning_format": CHECKPOINT_FORMAT + 1}, tmp_path / "future.ckpt")
    with pytest.raises(ValueError, match="newer than this spectra_lightning reads"):
        load_model(tmp_path / "future.ckpt", torch.device("cpu"))


def test_an_old_schedule_that_mixes_units_is_refused_in_one_line():
    from spectra_lightning.model.legacy import upgrade_hparams

    with pytest.raises(ConfigError, match="mixes fractions and steps"):
        upgrade_hparams({"kl_weight": 1.0, "kl_warmup_start": 500, "kl_warmup_steps": 0.3})
    up = upgrade_hparams({"kl_weight": 0.3, "kl_warmup_start": 50000, "kl_warmup_steps": 50000, "lr": 1e-3})
    assert up["kl_schedule"]["init_args"] == {"weight": 0.3, "start": 50000, "length": 50000, "unit": "steps"}
    assert "lr" not in up and upgrade_hparams(up) == up  # today's pass through unchanged


def test_an_injected_network_is_used_and_checked():
    net = ConvAutoencoder(64, 4, depth=3)
    model = SpectrumAutoencoder(n_pixels=64, net=net)
    assert model.net is net and model.latent_dim == 4
    spec = {"class_path": "spectra_lightning.model.nets.ConvAutoencoder", "init_args": {"latent_dim": 4, "depth": 2}}
    built = SpectrumAutoencoder(n_pixels=64, net=spec)  # a spec is built with the data's length
    assert built.net.n_pixels == 64 and built.net.depth == 2
    with pytest.raises(ConfigError, match="expected a network"):  # a callable is code, not a part
        SpectrumAutoencoder(n_pixels=64, net=lambda n: ConvAutoencoder(n, 4, depth=2))
    with pytest.raises(ConfigError, match=r"takes 64 px but the data has 128"):
        SpectrumAutoencoder(n_pixels=128, net=net)


def train_loss_and_terms(model, b):
    """The training step's loss, and its reconstruction and KL terms recomputed with the same noise draw."""
    torch.manual_seed(1)
    loss, _, _ = model._shared_step(dict(b), "train")
    torch.manual_seed(1)
    recon, mu, logvar = model(b["flux"])
    return loss, model.loss(recon, b).mean(), kl_to_prior(mu, logvar).mean(0).sum()


def test_the_schedule_shapes_the_training_loss_and_validation_keeps_the_plain_objective(monkeypatch):
    torch.manual_seed(0)
    model = small(
        kl_schedule=CapacityAnnealing(5.0, capacity=2.0, grow=0, capacity_weight=30.0, until=10, unit="steps")
    )
    b = batch()
    model.train()
    for step, in_capacity in ((9, True), (10, False)):
        monkeypatch.setattr(type(model), "global_step", property(lambda self, s=step: s))
        loss, rec, kl = train_loss_and_terms(model, b)
        want = rec + (30.0 * (kl - 2.0).abs() if in_capacity else 5.0 * kl)
        assert torch.allclose(loss, want), step
    monkeypatch.setattr(type(model), "global_step", property(lambda self: 0))
    model.eval()  # validation: reconstruction + λ·KL, never the capacity term
    loss, _, _ = model._shared_step(dict(b), "val")
    recon, mu, logvar = model(b["flux"])
    assert torch.allclose(loss, model.loss(recon, b).mean() + 5.0 * kl_to_prior(mu, logvar).mean(0).sum())


@pytest.mark.parametrize("stage", ["val", "test"])
def test_an_evaluation_epoch_sums_its_per_node_kl_afresh(stage):
    """The per-node KL is summed over an evaluation epoch's batches; an epoch stopped mid-way (an exception in
    the loop) must not leave its partial sum to the next one: each epoch's start drops what is held."""
    model = small(variational=True)
    model.eval()
    b = batch()
    with torch.no_grad():
        model._shared_step(dict(b), stage)
        one = model._kl_node_sums[stage].clone()
        model._shared_step(dict(b), stage)  # the same batch twice: the sums add up
        assert torch.allclose(model._kl_node_sums[stage], 2 * one)
        getattr(model, f"on_{'validation' if stage == 'val' else 'test'}_epoch_start")()
        model._shared_step(dict(b), stage)
    assert torch.allclose(model._kl_node_sums[stage], one)


def test_the_monitored_objective_means_the_same_in_every_epoch(tmp_path, tiny_store):
    """``val/loss`` follows the λ schedule (here a warm-up over the whole run); ``val/objective`` is always
    reconstruction + the final λ × KL, so a checkpoint's "best" compares like with like. The per-node KL
    (``val/kl_node/i``) adds up to ``val/kl``."""
    import lightning as L

    from spectra_lightning.cli import main

    from helpers import tiny_config

    class Record(L.Callback):
        rows: list = []
        node_sums: list = []

        def on_validation_epoch_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                m = trainer.callback_metrics
                Record.rows.append({k: float(m[f"val/{k}"]) for k in ("loss", "objective", "recon", "kl")})

        def on_train_epoch_end(self, trainer, pl_module):  # after the epoch's validation and its module hooks
            m = trainer.callback_metrics
            nodes = [float(m[f"val/kl_node/{i}"]) for i in range(pl_module.latent_dim)]
            Record.node_sums.append((sum(nodes), float(m["val/kl"])))

    import spectra_lightning.cli.training as cli

    original = cli.SpectraCLI._instantiate_trainer
    cli.SpectraCLI._instantiate_trainer = lambda self, config, callbacks: original(self, config, [*callbacks, Record()])
    try:
        cfg = tiny_config(tmp_path, tiny_store, logger=False, max_epochs=3, limit_train_batches=3)
        args = ["--model.kl_schedule.class_path=LinearWarmup", "--model.kl_schedule.init_args.weight=5"]
        args.append("--model.kl_schedule.init_args.length=0.99")
        assert main(["fit", "--config", str(cfg), *args]) == 0
    finally:
        cli.SpectraCLI._instantiate_trainer = original
    rows = Record.rows
    assert len(rows) == 3
    # the per-node KL, logged once an epoch, adds up to the epoch's KL
    assert len(Record.node_sums) == 3
    for nodes, kl in Record.node_sums:
        assert nodes == pytest.approx(kl, rel=1e-5)
    for r in rows:
        assert r["objective"] == pytest.approx(r["recon"] + 5.0 * r["kl"], rel=1e-5)
    # during the warm-up λ < 5: the scheduled loss is below the objective, by (5 - λ)·KL
    assert rows[0]["loss"] < rows[0]["objective"] - 1e-6 * abs(rows[0]["objective"])


def test_an_injected_network_is_rebuilt_from_its_checkpoint(tmp_path, monkeypatch):
    """A net passed from Python is saved as its class path and init args: load_model rebuilds it (it used to
    fail with "Error(s) in loading state_dict"); a loss of the user's own module loads once that module is allowed;
    a net that cannot say how to rebuild it is refused."""
    import lightning as L

    from spectra_lightning.common.errors import ConfigError
    from spectra_lightning.model.checkpoints import load_model
    from spectra_lightning.model.nets import ConvAutoencoder

    torch.manual_seed(0)
    model = SpectrumAutoencoder(
        n_pixels=64, net=ConvAutoencoder(64, 4, depth=3, warp_knots=2), loss=Huber(0.1), kl_schedule=Constant(2.0)
    )
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=1)
    data = [{"flux": torch.rand(4, 64) + 0.5, "index": torch.arange(4)}]
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    with pytest.raises(ConfigError, match=r"'test_module.Huber' is not a spectra_lightning class.*--allow-module"):
        load_model(tmp_path / "m.ckpt", torch.device("cpu"))
    monkeypatch.setenv("SPECTRA_LIGHTNING_ALLOW_MODULES", "test_module")
    loaded = load_model(tmp_path / "m.ckpt", torch.device("cpu"))
    assert loaded.net.depth == 3 and loaded.net.warp is not None
    assert type(loaded.loss) is Huber and loaded.loss.delta == 0.1 and loaded.kl_schedule.weight == 2.0
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    class Bare(torch.nn.Module):
        n_pixels, latent_dim = 64, 4

    with pytest.raises(ConfigError, match="Bare cannot be rebuilt from a checkpoint"):
        SpectrumAutoencoder(n_pixels=64, net=Bare())


class Huber(Reconstruction):
    """A loss written outside the package, as a user would: one class, nothing else touched.

    Args:
        delta: where the error turns from squared to linear.
    """

    def __init__(self, delta: float = 0.05, normalisation: str = "sum"):
        super().__init__(normalisation)  # type: ignore[arg-type]
        self.delta = delta

    def pixel_error(self, residual, batch):
        return torch.nn.functional.huber_loss(residual, torch.zeros_like(residual), reduction="none", delta=self.delta)


def test_a_new_loss_is_one_class_named_in_the_config(tmp_path, tiny_store, capsys):
    """``model.loss: {class_path: test_module.Huber}`` trains through the CLI once its module is allowed; the
    checkpoint names it and reloads (``encode --allow-module``); without the allowance each is one line, exit 2."""
    import yaml

    from spectra_lightning.cli import main

    from helpers import tiny_config

    cfg = tiny_config(tmp_path, tiny_store, logger=False, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    args = ["fit", "--config", str(cfg), "--model.loss=test_module.Huber", "--model.loss.delta=0.2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "'test_module.Huber' is not a spectra_lightning class" in err and "\n" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert main([*args, "--allow_modules=[test_module]"]) == 0
    (ckpt,) = (tmp_path / "run" / "checkpoints").glob("*.ckpt")
    saved = torch.load(ckpt, weights_only=True)["hyper_parameters"]["loss"]
    assert saved == {"class_path": "test_module.Huber", "init_args": {"delta": 0.2, "normalisation": "sum"}}
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert written["model"]["loss"]["class_path"] == "test_module.Huber"
    encode = ["encode", "--ckpt", str(ckpt), "--store", str(tiny_store), "--quiet", "--output"]
    assert main([*encode, str(tmp_path / "refused.zarr")]) == 2  # the allowance lasted for that command only
    assert "--allow-module test_module" in capsys.readouterr().err
    assert main([*encode, str(tmp_path / "codes.zarr"), "--allow-module", "test_module"]) == 0
    assert (tmp_path / "codes.zarr" / "mu").exists()


def test_chi_squared_weighs_each_pixel_by_its_inverse_variance():
    """Ground truth: residuals of exactly 1σ give χ² = the number of usable pixels; a pixel of zero ivar (or a
    masked one) counts nothing; without ivar in the batch the loss says what it needs, in one line."""
    from spectra_lightning.model.losses import ChiSquared
    from spectra_lightning.store.batch import finish_batch

    flux = torch.ones(2, 6)
    sigma = torch.tensor([[0.1, 0.2, 0.5, 1.0, 2.0, 0.1], [0.3] * 6])
    ivar = 1 / sigma**2
    ivar[1, 0] = 0.0  # no information
    ivar[1, 1] = float("nan")  # unusable
    wire = {"flux": flux.clone(), "ivar": ivar}
    wire["flux"][0, 5] = float("nan")  # masked on the wire
    b = finish_batch(wire)
    assert b["ivar"][0, 5] == 0 and b["ivar"][1, 1] == 0
    recon = flux + sigma  # every residual exactly one σ
    assert ChiSquared("sum")(recon, b).tolist() == pytest.approx([5.0, 4.0], rel=1e-5)
    assert ChiSquared("mean")(recon, b).tolist() == pytest.approx([1.0, 4.0 / 6.0], rel=1e-5)
    with pytest.raises(ConfigError, match="ChiSquared needs inverse variances"):
        ChiSquared()(recon, {"flux": flux, "mask": torch.ones_like(flux, dtype=torch.bool)})


def test_spectra_that_weigh_nothing_in_the_loss_are_warned_about_once():
    """A ChiSquared batch whose ivar is all zero for a spectrum trained it on the KL term alone, silently."""
    import lightning as L

    from spectra_lightning.common.errors import WeightlessSpectraWarning
    from spectra_lightning.model.losses import ChiSquared

    torch.manual_seed(0)
    model = SpectrumAutoencoder(net=NET, n_pixels=64, loss=ChiSquared("sum"))
    ivar = torch.ones(4, 64)
    ivar[2] = 0.0  # no information anywhere
    data = [{"flux": torch.rand(4, 64) + 0.5, "ivar": ivar, "index": torch.tensor([10, 11, 12, 13])}] * 3
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=3)
    with pytest.warns(WeightlessSpectraWarning) as caught:
        trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    ours = [w for w in caught if issubclass(w.category, WeightlessSpectraWarning)]
    assert len(ours) == 1 and "1 spectra" in str(ours[0].message) and "row 12" in str(ours[0].message)
    assert ChiSquared().weightless({"ivar": ivar, "mask": torch.ones(4, 64, dtype=torch.bool)}).tolist() == [
        False,
        False,
        True,
        False,
    ]
