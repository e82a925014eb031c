import numpy as np
import pytest
import torch

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.model.nets import (
    ConvAutoencoder,
    PhaseConvTranspose1d,
    SingleInputConv1d,
    TapsConv1d,
    n_parameters,
)


def test_full_size_network_shapes_and_parameter_count():
    net = ConvAutoencoder(327_680, 128, 15)
    assert n_parameters(net) == 7_046_997
    assert net.encoder.bottleneck == (512, 20)
    with torch.no_grad():
        recon, mu, logvar = net(torch.randn(1, 327_680))
    assert recon.shape == (1, 327_680) and mu.shape == (1, 128) and logvar.shape == (1, 128)


@pytest.mark.parametrize("n_pixels,depth", [(8192, 9), (512, 5), (1024, 2)])
def test_short_variants_roundtrip_shape(n_pixels, depth):
    net = ConvAutoencoder(n_pixels, 8, depth)
    recon, mu, _ = net(torch.randn(3, n_pixels), sample=True)
    assert recon.shape == (3, n_pixels) and mu.shape == (3, 8)


def test_any_length_is_padded_to_one_the_depth_accepts():
    net = ConvAutoencoder(1000, 8, 5)  # 1000 px is not a multiple of 2**4: padded to 1008 inside, cropped after
    assert net.encoder.padded == 1008
    flux = torch.randn(2, 1000)
    recon, mu, _ = net(flux)
    assert recon.shape == (2, 1000) and mu.shape == (2, 8)
    # the padding is zeros: the same as giving the zero-padded input to an unpadded network of 1008 px
    wide = ConvAutoencoder(1008, 8, 5)
    wide.load_state_dict(net.state_dict())
    np.testing.assert_allclose(
        wide(torch.nn.functional.pad(flux, (0, 8)))[0][:, :1000].detach(), recon.detach(), atol=1e-6
    )
    with pytest.raises(ConfigError, match="depth 12 is too deep for 1000 px .* use depth <= 11"):
        ConvAutoencoder(1000, 8, 12)
    with pytest.raises(ConfigError, match="depth must be in 2..15"):
        ConvAutoencoder(1000, 8, 16)


def test_doppler_shift_moves_a_line_by_v_over_c():
    from spectra_lightning.physics.doppler import C_KMS, DopplerShift
    from spectra_lightning.physics.grid import GRIDS

    wave = GRIDS["quickstart"].wavelength
    line = 1 - 0.6 * np.exp(-0.5 * ((wave - 5200.0) / 0.2) ** 2)
    shift = DopplerShift(wave)
    v = torch.tensor([-25.0, 0.0, 20.0, 150.0], requires_grad=True)
    out = shift(torch.tensor(line, dtype=torch.float32).repeat(4, 1), v)
    depth = (1 - out).detach().numpy()
    centroid = (depth * wave).sum(1) / depth.sum(1)
    np.testing.assert_allclose(centroid, 5200.0 * (1 + v.detach().numpy() / C_KMS), atol=2e-3)
    np.testing.assert_allclose(out[1].detach().numpy(), line, atol=1e-6)  # v = 0 is the identity
    out.sum().backward()
    assert torch.isfinite(v.grad).all() and (v.grad.abs() > 0).all()


def test_doppler_node_shifts_the_decoded_spectrum():
    from spectra_lightning.model.module import SpectrumAutoencoder
    from spectra_lightning.physics.grid import GRIDS

    grid = GRIDS["tiny"]
    net = {"class_path": "spectra_lightning.model.nets.ConvAutoencoder", "init_args": {"latent_dim": 4, "depth": 5}}
    net["init_args"] |= {"doppler_node": 2, "doppler_scale": 30.0}
    m = SpectrumAutoencoder(net=net, n_pixels=grid.length, grid=grid.describe())
    z = torch.zeros(2, 4)
    z[1, 2] = 1.0  # +30 km/s
    with torch.no_grad():
        rest = m.net.decoder(z)
        out = m.net.decode(z)
    torch.testing.assert_close(out[0], rest[0])
    torch.testing.assert_close(out[1], m.net.shift(rest[1:], torch.tensor([30.0]))[0])
    with pytest.raises(ConfigError, match=r"--model.net \(ConvAutoencoder\) needs the data's grid"):
        SpectrumAutoencoder(net=net, n_pixels=grid.length)
    with pytest.raises(ConfigError, match="needs the grid's wavelengths"):
        ConvAutoencoder(grid.length, 4, 5, doppler_node=2).decode(z)


def test_warp_moves_a_line_by_its_displacement_field():
    from spectra_lightning.model.nets import Warp

    n = 400
    x = torch.arange(n, dtype=torch.float32)
    line = torch.exp(-0.5 * ((x - 200.0) / 4.0) ** 2)[None]
    warp = Warp(n, latent_dim=2, knots=1, scale=8.0)
    with torch.no_grad():
        warp.coef.weight.copy_(torch.tensor([[0.5, 0.0]]))  # node 0 drives it: 8 px × 0.5 × z0
        warp.coef.bias.zero_()
    for z0, moved in ((1.0, 4.0), (-1.5, -6.0), (0.0, 0.0)):
        out = warp(line, torch.tensor([[z0, 3.0]]))[0]
        centre = float((out * x).sum() / out.sum())
        assert centre == pytest.approx(200.0 + moved, abs=0.02)
    # more knots: the displacement is linear between them (here 0 px at the left, 6 px at the right end)
    warp3 = Warp(n, latent_dim=1, knots=3, scale=1.0)
    with torch.no_grad():
        warp3.coef.weight.zero_()
        warp3.coef.bias.copy_(torch.tensor([0.0, 3.0, 6.0]))
    d = warp3.displacement(torch.zeros(1, 1))[0]
    np.testing.assert_allclose(d.detach().numpy(), np.linspace(0, 6, n), atol=1e-5)


def test_the_warp_contains_the_doppler_shift_on_a_linear_grid():
    """What the quickstart builds in: one code direction with knot values ∝ λ_k is DopplerShift."""
    from spectra_lightning.model.nets import Warp
    from spectra_lightning.physics.doppler import C_KMS, DopplerShift
    from spectra_lightning.physics.grid import GRIDS

    wave = GRIDS["quickstart"].wavelength
    n = len(wave)
    rng = np.random.default_rng(0)
    flux = torch.tensor(1 - 0.5 * rng.random((1, n)) ** 8, dtype=torch.float32)
    warp = Warp(n, latent_dim=2, knots=4, scale=1.0)
    knots_px = np.linspace(0, n - 1, 4)
    wave_px = np.interp(knots_px, np.arange(n), wave) / (wave[1] - wave[0])
    v = 20.0
    beta = v / C_KMS
    with torch.no_grad():
        warp.coef.weight.zero_()
        warp.coef.weight[:, 0] = torch.tensor(wave_px * beta / (1 + beta), dtype=torch.float32)
        warp.coef.bias.zero_()
        warped = warp(flux, torch.tensor([[1.0, 0.0]]))
        shifted = DopplerShift(wave)(flux, torch.tensor([v]))
    np.testing.assert_allclose(warped.numpy(), shifted.numpy(), atol=2e-3)


def test_the_warp_is_off_by_default_and_adds_only_its_coefficients():
    torch.manual_seed(0)
    plain = ConvAutoencoder(512, 4, 5)
    torch.manual_seed(0)
    warped = ConvAutoencoder(512, 4, 5, warp_knots=3, warp_init=0.1)
    assert plain.warp is None and warped.warp is not None
    assert set(warped.state_dict()) - set(plain.state_dict()) == {"warp.coef.weight", "warp.coef.bias"}
    assert n_parameters(warped) - n_parameters(plain) == 3 * 4 + 3
    assert float(warped.warp.coef.weight.std()) == pytest.approx(0.1, rel=0.5)  # its own init, not Kaiming's
    z = torch.randn(8, 4)
    with torch.no_grad():  # a zero displacement field leaves the decoder's output as it is
        warped.warp.coef.weight.zero_()
        warped.warp.coef.bias.zero_()
        warped.decoder.load_state_dict(plain.decoder.state_dict())
        torch.testing.assert_close(warped.decode(z), plain.decode(z))
    with pytest.raises(ConfigError, match="warp_knots"):
        ConvAutoencoder(512, 4, 5, warp_knots=-1)


@pytest.mark.parametrize("grid", ["quickstart", "harps"])
def test_the_doppler_shift_keeps_its_precision_on_long_grids(grid):
    """Against numpy's float64 interpolation at λ/(1+v/c): float32 throughout, yet errors stay at float32's
    level on the full 327,680-px grid (reading positions as i − d in float32 gave 1.5 % of a pixel step there)."""
    from spectra_lightning.physics.doppler import DopplerShift
    from spectra_lightning.physics.grid import C_KMS, GRIDS

    wave = GRIDS[grid].wavelength
    flux = np.random.default_rng(0).random((2, len(wave))).astype(np.float32)
    v = np.array([12.3, -27.1])
    out = DopplerShift(wave)(torch.from_numpy(flux), torch.from_numpy(v)).numpy()
    want = np.stack([np.interp(wave / (1 + v[i] / C_KMS), wave, flux[i].astype(np.float64)) for i in range(2)])
    assert np.abs(out - want)[:, 5:-5].max() < 2e-5
    # the augmentation's form: NaN (masked) where the source lies beyond the grid, the same values inside
    masked = DopplerShift(wave, fill=float("nan"))(torch.from_numpy(flux), torch.from_numpy(v)).numpy()
    inside = np.isfinite(masked)
    np.testing.assert_array_equal(masked[inside], out[inside])
    src = wave[None, :] / (1 + v[:, None] / C_KMS)
    np.testing.assert_array_equal(inside, (src >= wave[0]) & (src <= wave[-1]))


def plain_copy(layer):
    """The same layer as its torch base class (same parameters): what the fast subclasses replace."""
    import copy

    base = copy.deepcopy(layer)
    base.__class__ = next(c for c in type(layer).__mro__[1:] if c.__module__.startswith("torch.nn"))
    return base


@pytest.mark.parametrize(
    "make, shape",
    [
        (
            lambda: SingleInputConv1d(1, 16, 7, stride=2, padding=3),
            (3, 1, 64),
        ),
        (lambda: SingleInputConv1d(1, 4, 5, stride=1, padding=2), (2, 1, 33)),
        (
            lambda: PhaseConvTranspose1d(16, 1, 4, stride=2, padding=1),
            (3, 16, 40),
        ),
        (
            lambda: PhaseConvTranspose1d(8, 3, 4, stride=2, padding=1),
            (2, 8, 17),
        ),
        (lambda: TapsConv1d(1, 1, 3, padding=1), (3, 1, 50)),
        (lambda: TapsConv1d(1, 1, 5, padding=2), (2, 1, 9)),
    ],
)
def test_the_fast_layers_equal_the_torch_layers_they_replace(make, shape):
    """Outputs and every gradient (input, weight, bias) equal torch's own layer to float32 rounding."""
    torch.manual_seed(0)
    fast = make()
    plain = plain_copy(fast)
    assert type(plain) in (torch.nn.Conv1d, torch.nn.ConvTranspose1d)
    x = torch.randn(*shape, dtype=torch.float64).float().requires_grad_(True)
    g = torch.randn_like(plain(x))
    grads = []
    for layer in (fast, plain):
        out = layer(x)
        assert out.shape == g.shape
        (out * g).sum().backward()
        grads.append((out.detach(), x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()))
        x.grad = None
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_the_network_uses_the_fast_layers_and_its_state_dict_is_unchanged():
    """The fast layers are the old ones under the same keys: a checkpoint of format 1 (plain layers) has exactly
    the state-dict keys and shapes of today's network."""
    from pathlib import Path

    net = ConvAutoencoder(512, 4, 4, warp_knots=3)
    assert isinstance(net.encoder.conv[0], SingleInputConv1d) and isinstance(net.decoder.deconv[-1], TapsConv1d)
    assert isinstance(net.decoder.deconv[-3], PhaseConvTranspose1d)
    old = torch.load(Path(__file__).parent / "data" / "format1_tiny_warp.ckpt", weights_only=True)["state_dict"]
    old = {k.removeprefix("net."): v.shape for k, v in old.items() if k.startswith("net.")}
    assert old == {k: v.shape for k, v in net.state_dict().items()}


@pytest.mark.slow  # inductor compiles C++ kernels: ~a minute on 2 cores
def test_a_compiled_network_gives_the_eager_loss_and_gradients():
    """``torch.compile`` of the encoder and decoder (what ``benchmarks/train_step.py`` and ``gpu_throughput.py``
    time): the module's training loss and every parameter's gradient equal the eager network's to float32 rounding."""
    import copy

    from spectra_lightning.model.kl_schedules import LinearWarmup
    from spectra_lightning.model.losses import SquaredError
    from spectra_lightning.model.module import SpectrumAutoencoder

    torch.manual_seed(0)
    eager = SpectrumAutoencoder(
        net=ConvAutoencoder(256, 4, 4, warp_knots=3), loss=SquaredError(), kl_schedule=LinearWarmup(1.0), n_pixels=256
    )
    compiled = copy.deepcopy(eager)
    compiled.net.encoder = torch.compile(compiled.net.encoder)
    compiled.net.decoder = torch.compile(compiled.net.decoder)
    flux = 1 + 0.05 * torch.randn(8, 256)
    batch = {"flux": flux, "mask": torch.ones_like(flux, dtype=torch.bool)}
    grads = []
    for model in (eager, compiled):
        model.eval()  # μ decoded, no sample: both see the same numbers
        loss = model.terms(batch, "train")["loss"]
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
