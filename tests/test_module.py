from pathlib import Path

import pytest
import torch

from spectra_lightning.module import SpectrumAutoencoder, kl_divergence, kl_weight_at, masked_error


def small(**kw):
    return SpectrumAutoencoder(latent_dim=4, depth=4, n_pixels=64, **kw)


def batch(b=3, length=64):
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[:, :10] = False
    return {"flux": torch.randn(b, length), "mask": mask, "index": torch.arange(b), "labels": torch.zeros(b, 2)}


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    assert torch.allclose(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2, 3))
    # analytic: KL(N(1, e^{-1}) || N(0,1)) = 0.5 (1 + e^-1 - 1 + 1)
    kl = kl_divergence(torch.ones(1, 1), -torch.ones(1, 1))
    assert kl.item() == pytest.approx(0.5 * (1 + torch.exp(torch.tensor(-1.0)).item()))


def test_masked_pixels_get_zero_gradient():
    model = small()
    b = batch()
    flux = b["flux"].clone().requires_grad_(True)
    recon, _, _ = model(flux)
    loss = masked_error(recon, flux, b["mask"].float(), "sum").mean()
    (grad_recon,) = torch.autograd.grad(loss, recon, retain_graph=True)
    assert (grad_recon[:, :10] == 0).all() and (grad_recon[:, 10:] != 0).any()


def test_reconstruction_errors_and_normalisations():
    recon, flux = torch.zeros(2, 8), torch.ones(2, 8)
    mask = torch.ones(2, 8)
    mask[1, 4:] = 0
    assert masked_error(recon, flux, mask, "sum").tolist() == [8.0, 4.0]
    assert masked_error(recon, flux, mask, "paper").tolist() == [1.0, 1.0]
    # gaussian: r²/(2σ) per pixel, equal to |r| at |r| = 2σ
    assert masked_error(recon, flux, mask, "sum", "gaussian", noise_scale=0.5).tolist() == [8.0, 4.0]
    assert masked_error(recon, 0.5 * flux, mask, "paper", "gaussian", noise_scale=0.5).tolist() == [0.25, 0.25]


def test_deterministic_model_has_no_kl_and_uses_mu():
    model = small(variational=False, kl_weight=5.0)
    model.train()
    b = batch()
    loss, mu, _ = model._shared_step(b, "val")
    recon_mu = model.net.decoder(mu)
    expected = masked_error(recon_mu, b["flux"], b["mask"].float(), "sum").mean()
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


def test_warmup_schedule_values():
    assert kl_weight_at(0, 3.0, 10, 20) == 0.0
    assert kl_weight_at(10, 3.0, 10, 20) == 0.0
    assert kl_weight_at(20, 3.0, 10, 20) == pytest.approx(1.5)
    assert kl_weight_at(30, 3.0, 10, 20) == 3.0
    assert kl_weight_at(10_000, 3.0, 10, 20) == 3.0
    assert kl_weight_at(5, 0.3, 0, 0) == 0.3


def test_eval_step_returns_codes():
    model = small()
    model.eval()
    out = model.validation_step(batch(), 0)
    assert out["mu"].shape == (3, 4) and out["logvar"].shape == (3, 4) and out["index"].tolist() == [0, 1, 2]


def test_mean_normalisation_keeps_the_old_name_paper():
    flux, recon, mask = torch.zeros(2, 8), torch.ones(2, 8), torch.ones(2, 8)
    mask[1, 4:] = 0
    assert torch.equal(masked_error(recon, flux, mask, "mean"), torch.tensor([1.0, 1.0]))
    assert torch.equal(masked_error(recon, flux, mask, "paper"), masked_error(recon, flux, mask, "mean"))


def test_a_checkpoint_written_before_the_format_key_loads_and_encodes_the_same(tmp_path):
    """tests/data/format0_tiny_doppler.ckpt: written 2026-11-29 by the code before CHECKPOINT_FORMAT (a 4-node VAE
    with a Doppler node on the 512-px tiny grid, two steps); the .npz holds what it gave then for three inputs."""
    import numpy as np

    from spectra_lightning.checkpoints import load_model
    from spectra_lightning.module import CHECKPOINT_FORMAT

    data = Path(__file__).parent / "data"
    old = torch.load(data / "format0_tiny_doppler.ckpt", weights_only=True)
    assert "spectra_lightning_format" not in old
    model = load_model(data / "format0_tiny_doppler.ckpt", torch.device("cpu"))
    want = np.load(data / "format0_tiny_doppler.npz")
    with torch.no_grad():
        recon, mu, logvar = model(torch.from_numpy(want["flux"]))
    np.testing.assert_allclose(mu.numpy(), want["mu"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logvar.numpy(), want["logvar"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(recon.numpy(), want["recon"], rtol=1e-5, atol=1e-6)
    # saved again, it carries the format; a newer format than this code reads is refused in one line
    ckpt = {**old, "spectra_lightning_format": CHECKPOINT_FORMAT + 1}
    torch.save(ckpt, tmp_path / "future.ckpt")
    with pytest.raises(ValueError, match="newer than this spectra_lightning reads"):
        load_model(tmp_path / "future.ckpt", torch.device("cpu"))


def test_an_injected_network_is_used_and_checked():
    from spectra_lightning.errors import ConfigError
    from spectra_lightning.nets import ConvAutoencoder

    net = ConvAutoencoder(64, 4, depth=3)
    model = SpectrumAutoencoder(latent_dim=4, n_pixels=64, net=net)
    assert model.net is net
    built = SpectrumAutoencoder(latent_dim=4, n_pixels=64, net=lambda n: ConvAutoencoder(n, 4, depth=2))
    assert built.net.n_pixels == 64 and built.net.depth == 2
    with pytest.raises(ConfigError, match=r"n_pixels, latent_dim = \(64, 4\), but the data has 128 px"):
        SpectrumAutoencoder(latent_dim=4, n_pixels=128, net=net)
    with pytest.raises(ConfigError, match="warp_knots / coord_channels / output_level build the default net"):
        SpectrumAutoencoder(latent_dim=4, n_pixels=64, net=net, warp_knots=4)


def test_the_decoder_priors_are_module_settings_equal_to_an_injected_net():
    """``warp_knots`` / ``coord_channels`` / ``output_level`` on the module build the same network (same seed,
    same weights) as the injected ``ConvAutoencoder`` with them, so a recipe needs no ``net`` block for them."""
    from spectra_lightning.nets import ConvAutoencoder

    for prior in ({"warp_knots": 3, "warp_init": 0.1}, {"coord_channels": True}, {"output_level": 1.0}):
        torch.manual_seed(0)
        net = ConvAutoencoder(64, 4, 3, **prior)
        injected = SpectrumAutoencoder(latent_dim=4, depth=3, n_pixels=64, net=net)
        torch.manual_seed(0)
        own = SpectrumAutoencoder(latent_dim=4, depth=3, n_pixels=64, **prior)
        a, b = injected.state_dict(), own.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert own.net.warp is None
    assert SpectrumAutoencoder(latent_dim=4, depth=3, n_pixels=64, warp_knots=3).net.warp is not None


def train_loss_and_terms(model, b):
    """The training step's loss, and its reconstruction and KL terms recomputed with the same noise draw."""
    torch.manual_seed(1)
    loss, _, _ = model._shared_step(dict(b), "train")
    torch.manual_seed(1)
    recon, mu, logvar = model(b["flux"])
    return (
        loss,
        masked_error(recon, b["flux"], b["mask"].float(), "sum").mean(),
        kl_divergence(mu, logvar).mean(0).sum(),
    )


def test_capacity_annealing_holds_the_kl_near_its_target_in_training_only():
    torch.manual_seed(0)
    model = small(kl_weight=5.0, kl_warmup_steps=0, kl_capacity=2.0, kl_capacity_steps=0)  # C = 2 nats at once
    b = batch()
    model.train()
    loss, rec, kl = train_loss_and_terms(model, b)
    assert torch.allclose(loss, rec + 5.0 * (kl - 2.0).abs())
    model.eval()  # validation keeps the plain objective
    loss, _, _ = model._shared_step(dict(b), "val")
    recon, mu3, logvar3 = model(b["flux"])
    want = (
        masked_error(recon, b["flux"], b["mask"].float(), "sum").mean()
        + 5.0 * kl_divergence(mu3, logvar3).mean(0).sum()
    )
    assert torch.allclose(loss, want)
    assert small().current_kl_capacity is None  # off by default


def test_a_capacity_phase_with_its_own_weight_then_the_plain_kl(monkeypatch):
    torch.manual_seed(0)
    model = small(
        kl_weight=5.0,
        kl_warmup_steps=0,
        kl_capacity=2.0,
        kl_capacity_steps=0,
        kl_capacity_weight=30.0,
        kl_capacity_until=10,
    )
    b = batch()
    model.train()
    for step, want_capacity in ((9, True), (10, False)):
        monkeypatch.setattr(type(model), "global_step", property(lambda self, s=step: s))
        loss, rec, kl = train_loss_and_terms(model, b)
        want = rec + (30.0 * (kl - 2.0).abs() if want_capacity else 5.0 * kl)
        assert torch.allclose(loss, want), step


def test_the_coarse_loss_term_grows_with_how_far_a_line_is_misplaced():
    """Pixel-wise, a one-pixel line drawn 3 or 9 px off costs the same; the smoothed term tells them apart."""
    flux, mask = torch.zeros(1, 200), torch.ones(1, 200)
    flux[0, 100] = -0.5

    def cost(shift, blur_weight):
        recon = torch.zeros(1, 200)
        recon[0, 100 + shift] = -0.5
        return masked_error(recon, flux, mask, "sum", "gaussian", 0.02, blur_px=4.0, blur_weight=blur_weight).item()

    assert cost(3, 0.0) == cost(9, 0.0) > 0
    assert cost(0, 1.0) == 0 < cost(1, 1.0) < cost(3, 1.0) < cost(9, 1.0)
    # rescaled so that a lone pixel costs the same at both scales: the far shift costs about twice the plain error
    assert cost(40, 1.0) == pytest.approx(2 * cost(40, 0.0), rel=0.01)


def test_the_monitored_objective_means_the_same_in_every_epoch(tmp_path, tiny_store):
    """``val/loss`` follows the λ schedule (here a warm-up over the whole run); ``val/objective`` is always
    reconstruction + the final λ × KL, so a checkpoint's "best" compares like with like."""
    import lightning as L

    from spectra_lightning.cli import main

    from helpers import tiny_config

    class Record(L.Callback):
        rows: list = []

        def on_validation_epoch_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                m = trainer.callback_metrics
                Record.rows.append({k: float(m[f"val/{k}"]) for k in ("loss", "objective", "recon", "kl")})

    import spectra_lightning.trainer_cli as cli

    original = cli.SpectraCLI._instantiate_trainer
    cli.SpectraCLI._instantiate_trainer = lambda self, config, callbacks: original(self, config, [*callbacks, Record()])
    try:
        cfg = tiny_config(tmp_path, tiny_store, logger=False, max_epochs=3, limit_train_batches=3)
        assert main(["fit", "--config", str(cfg), "--model.kl_weight=5", "--model.kl_warmup_steps=0.99"]) == 0
    finally:
        cli.SpectraCLI._instantiate_trainer = original
    rows = Record.rows
    assert len(rows) == 3
    for r in rows:
        assert r["objective"] == pytest.approx(r["recon"] + 5.0 * r["kl"], rel=1e-5)
    # during the warm-up λ < 5: the scheduled loss is below the objective, by (5 - λ)·KL
    assert rows[0]["loss"] < rows[0]["objective"] - 1e-6 * abs(rows[0]["objective"])


def test_an_injected_network_is_rebuilt_from_its_checkpoint(tmp_path):
    """A net passed from Python is saved as its class path and init args: load_model rebuilds it (it used to
    fail with "Error(s) in loading state_dict"); a net that cannot say how to rebuild it is refused."""
    import lightning as L

    from spectra_lightning.checkpoints import load_model
    from spectra_lightning.errors import ConfigError
    from spectra_lightning.nets import ConvAutoencoder

    torch.manual_seed(0)
    model = SpectrumAutoencoder(latent_dim=4, n_pixels=64, net=ConvAutoencoder(64, 4, depth=3, warp_knots=2))
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=1)
    data = [{"flux": torch.rand(4, 64) + 0.5, "index": torch.arange(4)}]
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = load_model(tmp_path / "m.ckpt", torch.device("cpu"))
    assert loaded.net.depth == 3 and loaded.net.warp is not None
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    class Bare(torch.nn.Module):
        n_pixels, latent_dim = 64, 4

    with pytest.raises(ConfigError, match="Bare cannot be rebuilt from a checkpoint"):
        SpectrumAutoencoder(latent_dim=4, n_pixels=64, net=Bare())
