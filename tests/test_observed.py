"""ObservedStar's operators against the generator's ground truth: a rest-frame synthetic star, moved by the
stellar shift, multiplied by the telluric transmission and drifted by the instrument, lands where ``synth`` puts
the same star at that velocity, zero-point, stretch and airmass."""

import numpy as np
import pytest
import torch
import yaml

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.ingest.synth import render, telluric_depth
from spectra_lightning.model.observed import ObservedStar
from spectra_lightning.physics.grid import SpectralGrid

# an O2 γ band and H2O lines beside stellar lines, sampled finely enough (R = 5,000 lines span ~20 px) that
# linear interpolation is not what the comparison measures
GRID = SpectralGrid(5850.0, 6349.95, 0.05, 10_000, mask_gap=False)
RESOLUTION, TELLURICS = 5000.0, 0.5


def star(**labels):
    base = dict(teff=5200.0, logg=4.4, feh=0.1, rv=0.0, vsini=2.0, snr=100.0, airmass=1.0)
    base.update(labels)
    return {k: np.array([v]) for k, v in base.items()}


def truth(**labels) -> np.ndarray:
    return render(GRID, star(**labels), None, RESOLUTION, TELLURICS)[0]


def inverse_softplus(y: np.ndarray) -> np.ndarray:
    y = np.maximum(y, 1e-12)
    return np.where(y > 20, y, np.log(np.expm1(y)))


def observed_by_net(v: float, zero_point: float, stretch: float, airmass: float, drivers="nodes") -> np.ndarray:
    """The rest-frame star (no velocity, no drift, no tellurics) through ObservedStar's operators, node 0 driving
    the velocity, 1 the zero-point, 2 the stretch, 3 the telluric depth (dedicated nodes, or unit directions); the
    transmission set to the generator's telluric optical depth at airmass 1 (what a learned one would have to find)."""
    net = ObservedStar(
        GRID.length, latent_dim=5, depth=4, velocity_scale=1.0, zero_point_scale=1.0, stretch_scale=1.0, drivers=drivers
    )
    net.set_wavelengths(GRID.wavelength)
    mid = 0.5 * (GRID.wave_min + GRID.wave_max)
    tau = telluric_depth(GRID, np.array([TELLURICS]), np.zeros(1), np.zeros(1), mid, RESOLUTION)[0]
    wave = GRID.wavelength
    # synth's stretch is about (wave_min + wave_max)/2, the network's about the middle pixel: the same drift
    zp_net = zero_point + stretch * (0.5 * (wave[0] + wave[-1]) - mid)
    with torch.no_grad():
        if drivers == "nodes":
            net.drivers_map.gain.fill_(1.0)
        else:
            net.drivers_map.weight.weight.copy_(torch.eye(4, 5))
        net.transmission.tau_free.copy_(torch.tensor(inverse_softplus(tau)))
        z = torch.tensor([[v, zp_net, stretch, float(inverse_softplus(np.array(airmass))), 0.0]], dtype=torch.float32)
        rest = torch.tensor(render(GRID, star(), None, RESOLUTION, 0.0), dtype=torch.float32)
        drive, _ = net.drivers_map(z)
        out = net.observe(rest, drive)[0].double().numpy()
        comp = net.components(z)
    assert float(comp["velocity"][0]) == pytest.approx(v, rel=1e-6)
    assert float(comp["depth"][0]) == pytest.approx(airmass, rel=1e-5)
    return out


def log_ratio_spread(a: np.ndarray, b: np.ndarray) -> float:
    """The spread of ln(a/b) away from the edges (each spectrum is normalised by its own median: a constant)."""
    r = np.log(a[200:-200] / b[200:-200])
    return float(np.std(r - r.mean()))


@pytest.mark.parametrize(
    "v,zero_point,stretch,airmass,drivers",
    [(40.0, 0.0, 0.0, 1.0, "nodes"), (0.0, 0.3, 0.0, 1.5, "nodes"), (-35.0, -0.2, 2.5e-4, 1.8, "directions")],
)
def test_star_tellurics_and_drift_land_where_synth_puts_them(v, zero_point, stretch, airmass, drivers):
    want = truth(rv=v, wave_offset=zero_point, wave_stretch=stretch, airmass=airmass)
    got = observed_by_net(v, zero_point, stretch, airmass, drivers)
    # the lines are ~40 % deep: a misplaced one by 0.05 px leaves a spread of several 1e-3
    assert log_ratio_spread(got, want) < 1e-3
    # and the comparison can fail: the same drift applied to the star only (the tellurics left behind) is far off
    wrong = observed_by_net(v + 3e5 * zero_point / 6100.0, 0.0, stretch, airmass)
    assert log_ratio_spread(wrong, want) > 5 * log_ratio_spread(got, want) or zero_point == 0.0
    # nor is the star's velocity left out without it showing
    assert (
        log_ratio_spread(observed_by_net(0.0, zero_point, stretch, airmass), want) > 20 * log_ratio_spread(got, want)
        or v == 0.0
    )


def test_the_stellar_velocity_leaves_the_tellurics_where_they_are_and_the_drift_moves_both():
    base = observed_by_net(0.0, 0.0, 0.0, 1.5)
    tellurics_only = np.log(base) - np.log(observed_by_net(0.0, 0.0, 0.0, 1e-6))
    moved_star = observed_by_net(50.0, 0.0, 0.0, 1.5)
    assert (
        np.std((np.log(moved_star) - np.log(observed_by_net(50.0, 0.0, 0.0, 1e-6)) - tellurics_only)[200:-200]) < 1e-5
    )
    step = GRID.step
    drifted = observed_by_net(0.0, 4 * step, 0.0, 1.5)
    drifted_tellurics = np.log(drifted) - np.log(observed_by_net(0.0, 4 * step, 0.0, 1e-6))
    np.testing.assert_allclose(drifted_tellurics[204:-196], tellurics_only[200:-200], atol=1e-4)


@pytest.mark.parametrize("drivers,latent_dim", [("directions", 4), ("nodes", 6)])
def test_a_fit_through_the_cli_trains_it_and_its_checkpoint_reloads_as_data(tmp_path, tiny_store, drivers, latent_dim):
    from spectra_lightning.cli import main
    from spectra_lightning.model.checkpoints import load_model

    from helpers import tiny_config

    cfg = yaml.safe_load(tiny_config(tmp_path, tiny_store, max_epochs=2).read_text())
    cfg["model"]["net"] = {
        "class_path": "spectra_lightning.model.observed.ObservedStar",
        "init_args": {"latent_dim": latent_dim, "depth": 5, "drivers": drivers},
    }
    (tmp_path / "observed.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["fit", "--config", str(tmp_path / "observed.yaml"), "--trainer.logger=false"]) == 0
    (checkpoint,) = (tmp_path / "run/checkpoints").glob("*.ckpt")
    model = load_model(checkpoint, torch.device("cpu"))
    net = model.net
    assert isinstance(net, ObservedStar) and not net.needs_wavelengths  # the checkpoint's grid reached it
    drivers = net.drivers()
    assert set(drivers) == {"velocity", "zero_point", "stretch", "depth"}
    assert all(np.isclose(share.sum(), 1.0) and share.shape == (latent_dim,) for share in drivers.values())
    # training moved the transmission (and dedicated gains) off their starting values
    assert float(net.transmission.tau_free.detach().std()) > 0
    if drivers == "nodes":
        gain = net.drivers_map.gain.detach()
        assert not torch.allclose(gain, torch.full_like(gain, 0.05))
    flux = torch.ones(2, net.n_pixels)
    recon, mu, _ = net(flux)
    assert recon.shape == (2, net.n_pixels) and torch.isfinite(recon).all() and mu.shape == (2, latent_dim)


def test_bad_settings_are_one_line():
    with pytest.raises(ConfigError, match="transmission must be one of learned, none, got 'tellurics'"):
        ObservedStar(1024, transmission="tellurics")
    net = ObservedStar(1024, latent_dim=4, depth=4, transmission="none")
    assert net.transmission is None and "depth" not in net.drivers()
    with pytest.raises(ConfigError, match="needs the grid's wavelengths"):
        net.decode(torch.zeros(1, 4))
    with pytest.raises(ConfigError, match="one wavelength per input pixel \\(1024\\), got 10"):
        net.set_wavelengths(np.arange(10.0))


def test_dedicated_nodes_drive_one_operator_each_and_the_star_never_sees_them():
    net = ObservedStar(1024, latent_dim=6, depth=4, drivers="nodes")
    net.set_wavelengths(np.linspace(5000.0, 5100.0, 1024))
    assert net.decoder.linear.in_features == 2  # the star is drawn from the two nodes no operator reads
    for k, name in enumerate(("velocity", "zero_point", "stretch", "depth")):
        assert np.argmax(net.drivers()[name]) == k and net.drivers()[name].sum() == 1.0
    z = torch.randn(3, 6)
    moved = z.clone()
    moved[:, 0] += 1.0  # the velocity node: only the velocity operator changes
    before, after = net.components(z), net.components(moved)
    assert not torch.allclose(before["velocity"], after["velocity"])
    for name in ("zero_point", "stretch", "depth"):
        torch.testing.assert_close(before[name], after[name])
    _, star_code = net.drivers_map(moved)
    torch.testing.assert_close(star_code, z[:, 4:])
    with pytest.raises(ConfigError, match="drivers='nodes' needs latent_dim > 4"):
        ObservedStar(1024, latent_dim=4, depth=4, drivers="nodes")
    with pytest.raises(ConfigError, match="drivers must be one of directions, nodes, got 'one'"):
        ObservedStar(1024, drivers="one")


def test_a_first_look_checkpoint_one_map_per_operator_loads_into_the_directions():
    net = ObservedStar(1024, latent_dim=4, depth=4)
    state = net.state_dict()
    rows = state.pop("drivers_map.weight.weight")
    old = {k: v for k, v in state.items() if k != "transmission.depth_bias"}
    old |= {
        "stellar.direction.weight": rows[:1] + 1.0,
        "instrument.coef.weight": rows[1:3] + 2.0,
        "transmission.depth_map.weight": rows[3:] + 3.0,
        "transmission.depth_map.bias": torch.tensor([0.7]),
    }
    fresh = ObservedStar(1024, latent_dim=4, depth=4)
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh.drivers_map.weight.weight, rows + torch.tensor([[1.0], [2.0], [2.0], [3.0]]))
    assert float(fresh.transmission.depth_bias) == pytest.approx(0.7)
