"""The paper's 1-D convolutional (variational) autoencoder as plain ``nn.Module``s.

Sedaghat et al. (2021), Fig. 2: a 15-layer strided Conv1d encoder, two linear heads
(μ, log σ²) and a mirrored ConvTranspose1d decoder. ``depth`` keeps only the first
``depth`` encoder layers (and the matching decoder), so the same code builds the
full 327,680-px network and short CPU variants. No Lightning here, no lazy layers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.model.parts import Recorded
from spectra_lightning.physics.doppler import DopplerShift, resample
from spectra_lightning.physics.grid import HARPS_LENGTH

ENCODER_CHANNELS = (16, 16, 16, 32, 32, 32, 64, 64, 64, 128, 128, 128, 256, 512, 512)
ENCODER_KERNELS = (7, 5, 5) + (3,) * 12
NEGATIVE_SLOPE = 0.1
LOGVAR_RANGE = (-12.0, 8.0)  # keeps exp(logvar) finite in fp16/bf16 and early training


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """A sample ``z ~ N(μ, σ²)`` ``(B, D)``, differentiable in μ and log σ² (each ``(B, D)``)."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def downsampling(depth: int) -> int:
    """Factor by which the encoder shrinks its input: every layer but the last has stride 2."""
    return 2 ** (depth - 1)


def padded_length(n_pixels: int, depth: int) -> int:
    """The length the network works at: ``n_pixels`` zero-padded on the right to a multiple of
    ``2**(depth-1)`` (a grid of any length works with any depth its length can carry)."""
    if not 2 <= depth <= len(ENCODER_CHANNELS):
        raise ConfigError(f"depth must be in 2..{len(ENCODER_CHANNELS)}, got {depth}")
    f = downsampling(depth)
    padded = -(-n_pixels // f) * f
    if padded > 2 * n_pixels:  # more padding than data: the deepest layers would see padding only
        deepest = max(
            d
            for d in range(2, len(ENCODER_CHANNELS) + 1)
            if -(-n_pixels // downsampling(d)) * downsampling(d) <= 2 * n_pixels
        )
        raise ConfigError(
            f"depth {depth} is too deep for {n_pixels} px (it would pad them to {padded}): use depth <= {deepest}"
        )
    return padded


# Three layers work on the full-length, one-channel signal, where oneDNN's convolutions are memory-bound and slow
# (their backward passes were a third of a quickstart step). Each is the same layer (same parameters, init and
# state-dict keys: a subclass) computed another way, equal to float rounding (tests/test_nets.py); measured in
# benchmarks/train_step.py.


class SingleInputConv1d(nn.Conv1d):
    """A one-input-channel ``Conv1d`` computed as weights × windows: one batched matmul ``(B, C, k) @ (B, k, L_out)``
    that writes the bias and the product in one pass (``baddbmm``), its output ``(B, C, L_out)`` already in the
    layout the next layer reads (a plain ``(C, k) @ windows`` returns a transposed view: a copy more)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels != 1 or self.groups != 1 or self.dilation != (1,) or not isinstance(self.padding, tuple):
            return super().forward(x)
        p, k, s = self.padding[0], self.kernel_size[0], self.stride[0]
        windows = nn.functional.pad(x[:, 0], (p, p)).unfold(1, k, s).transpose(1, 2)  # (B, k, L_out)
        b, c, n = windows.shape[0], self.out_channels, windows.shape[2]
        weight = self.weight.view(1, c, k).expand(b, c, k)
        if self.bias is None:
            return torch.bmm(weight, windows)
        return torch.baddbmm(self.bias.view(1, c, 1).expand(b, c, n), weight, windows)


class PhaseConvTranspose1d(nn.ConvTranspose1d):
    """``ConvTranspose1d(k=4, stride=2, padding=1)`` for few output channels: each of the four taps' channel sums
    ``P_j = w[..., j]ᵀ x`` in one batched matmul ``(B, 4·C_out, C_in) @ (B, C_in, M)``, then the two output phases
    ``out[2m] = P1[m] + P3[m−1]`` and ``out[2m+1] = P0[m+1] + P2[m]``, interleaved. (oneDNN's kernels for one or
    two output channels were the slowest layer of a quickstart step.)"""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        shape = (self.kernel_size, self.stride, self.padding, self.output_padding, self.dilation, self.groups)
        if output_size is not None or shape != ((4,), (2,), (1,), (0,), (1,), 1):
            return super().forward(x, output_size)
        c_in, c_out, k = self.weight.shape
        b, _, m = x.shape
        taps = self.weight.permute(2, 1, 0).reshape(1, k * c_out, c_in).expand(b, k * c_out, c_in)
        p0, p1, p2, p3 = torch.bmm(taps, x).view(b, k, c_out, m).unbind(1)  # each (B, C_out, M)
        even = p1 + nn.functional.pad(p3, (1, 0))[..., :m]
        odd = p2 + nn.functional.pad(p0, (0, 1))[..., 1:]
        y = torch.stack([even, odd], -1).view(b, c_out, 2 * m)
        return y + self.bias[:, None] if self.bias is not None else y


class TapsConv1d(nn.Conv1d):
    """A one-channel, stride-1 ``Conv1d`` as a sum of shifted copies (a few element-wise products)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0]
        simple = (self.in_channels, self.out_channels, self.stride, self.dilation, self.groups) == (1, 1, (1,), (1,), 1)
        if not simple or self.padding != (k // 2,) or k % 2 == 0:
            return super().forward(x)
        w, n = self.weight.view(k), x.shape[-1]
        xp = nn.functional.pad(x, (k // 2, k // 2))
        out = xp[..., :n] * w[0]
        for j in range(1, k):
            out = out + xp[..., j : j + n] * w[j]
        return out + self.bias if self.bias is not None else out


class Encoder(nn.Module):
    """Spectra ``(B, L)`` -> μ, log σ² each ``(B, D)``; ``L`` is padded to :func:`padded_length`, log σ² is
    clamped to :data:`LOGVAR_RANGE`."""

    def __init__(self, n_pixels: int = HARPS_LENGTH, latent_dim: int = 128, depth: int = 15):
        super().__init__()
        self.n_pixels, self.padded = n_pixels, padded_length(n_pixels, depth)
        layers: list[nn.Module] = []
        c_in = 1
        for i in range(depth):
            k = ENCODER_KERNELS[i]
            c_out = ENCODER_CHANNELS[i]
            stride = 1 if i == depth - 1 else 2
            conv = SingleInputConv1d if c_in == 1 else nn.Conv1d
            layers += [conv(c_in, c_out, k, stride=stride, padding=k // 2), nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)]
            c_in = c_out
        self.conv = nn.Sequential(*layers)
        self.bottleneck = (c_in, self.padded // downsampling(depth))
        flat = c_in * self.bottleneck[1]
        self.mu = nn.Linear(flat, latent_dim)
        self.logvar = nn.Linear(flat, latent_dim)

    def forward(self, flux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.padded != self.n_pixels:
            flux = nn.functional.pad(flux, (0, self.padded - self.n_pixels))  # zeros: what masked pixels hold
        h = self.conv(flux.unsqueeze(1)).flatten(1)
        return self.mu(h), self.logvar(h).clamp(*LOGVAR_RANGE)


class Decoder(nn.Module):
    """Codes ``(B, D)`` -> spectra ``(B, L)``; mirrors :class:`Encoder` (and crops its padding)."""

    def __init__(self, n_pixels: int = HARPS_LENGTH, latent_dim: int = 128, depth: int = 15):
        super().__init__()
        rev = list(reversed(ENCODER_CHANNELS[:depth])) + [1]
        self.n_pixels = n_pixels
        self.bottleneck = (rev[0], padded_length(n_pixels, depth) // downsampling(depth))
        self.linear = nn.Linear(latent_dim, rev[0] * self.bottleneck[1])
        layers: list[nn.Module] = [
            nn.ConvTranspose1d(rev[0], rev[1], 3, stride=1, padding=1),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        ]
        for c_in, c_out in zip(rev[1:-1], rev[2:]):
            up = PhaseConvTranspose1d if c_out == 1 else nn.ConvTranspose1d
            layers += [up(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)]
        layers.append(TapsConv1d(1, 1, 3, padding=1))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.linear(z).view(z.shape[0], *self.bottleneck)
        return self.deconv(h).squeeze(1)[:, : self.n_pixels]


class Warp(nn.Module):
    """A latent-driven smooth displacement of the decoded spectrum along the pixel axis (a 1-D
    spatial transformer): ``out(x) = in(x - d(x))`` with ``d`` interpolated linearly between
    ``knots`` control points spread evenly over the grid, their values a linear map of the code
    (``ConvAutoencoder(warp_init=...)``: the std of its initial weights).

    What it builds in: a shift operator whose span contains the Doppler shift. On a linear grid a shift
    by v displaces pixel i by (λ_i/Δλ)·β/(1+β), affine in i, which a piecewise-linear displacement with
    two or more knots represents exactly (one code direction with knot values ∝ λ_k reproduces
    :class:`DopplerShift`; tested); on a log grid it is uniform. It is not told which node drives it,
    nor that a displacement ∝ λ is special among the ones it can make.

    Args:
        n_pixels: L. latent_dim: D. knots: control points (1: one uniform shift per spectrum).
        scale: pixels per unit of the linear map's output.
    """

    def __init__(self, n_pixels: int, latent_dim: int, knots: int, scale: float = 8.0):
        super().__init__()
        self.knots, self.scale = knots, scale
        self.coef = nn.Linear(latent_dim, knots)
        x = torch.linspace(0, knots - 1, n_pixels) if knots > 1 else torch.zeros(n_pixels)
        hat = (1 - (x[None, :] - torch.arange(knots, dtype=torch.float32)[:, None]).abs()).clamp(min=0)
        self.register_buffer("hat", hat, persistent=False)  # (K, L): piecewise-linear basis

    def displacement(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, D)`` -> displacement ``(B, L)`` in pixels."""
        return self.scale * self.coef(z) @ self.hat

    def forward(self, flux: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return resample(flux, self.displacement(z).float())


class SpectrumNet(Recorded, nn.Module):
    """What ``SpectrumAutoencoder`` needs of a network (subclass it to write another; any ``nn.Module`` with these
    works from Python): ``n_pixels`` (L) and ``latent_dim`` (D); :meth:`encode` ``(B, L)`` -> μ, log σ² ``(B, D)``;
    :meth:`decode` ``(B, D)`` -> ``(B, L)``; ``init_args``, the constructor's arguments but ``n_pixels``, which
    rebuild it from a checkpoint; optionally ``set_wavelengths((L,) Å)`` to receive the data's grid."""

    n_pixels: int
    latent_dim: int
    not_recorded = ("n_pixels",)  # the grid's length: the module passes it anew when it rebuilds the network

    def encode(self, flux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, flux: torch.Tensor, sample: bool = False):
        """``(reconstruction (B, L), μ (B, D), log σ² (B, D))`` of spectra ``(B, L)``, decoding μ or, with
        ``sample``, a draw of the posterior (:func:`reparameterise`)."""
        mu, logvar = self.encode(flux)
        return self.decode(reparameterise(mu, logvar) if sample else mu), mu, logvar


class ConvAutoencoder(SpectrumNet):
    """The paper's network: a strided Conv1d encoder and its mirror as decoder, with optional decoder priors.

    ``forward`` returns ``(reconstruction (B, L), μ (B, D), log σ² (B, D))``.

    The caller decides whether to decode μ or a sample (:func:`reparameterise`); the Doppler node's wavelengths
    come from the data's grid (:meth:`set_wavelengths`, called by the module).

    Args:
        n_pixels: L, the grid's length (the module passes it).
        latent_dim: D, latent nodes.
        depth: encoder layers kept from the paper's 15 (shorter nets for short grids and CPU runs).
        doppler_node: a physics prior: this node is a radial velocity ``v = doppler_scale · z[:, node]`` km/s that
            shifts the decoder's (rest-frame) output (:class:`DopplerShift`, spender-style); None: no such node.
        doppler_scale: km/s per unit of the Doppler node.
        warp_knots: a generic decoder prior: the decoded spectrum is resampled along the pixel axis by a
            displacement linear in the code, interpolated between this many control points (:class:`Warp`, a
            shift operator whose span contains the Doppler shift); 0: none.
        warp_init: the warp's coefficients start at N(0, this²): small, but not 0 (at 0 no node ever drives it).
    """

    def __init__(
        self,
        n_pixels: int = HARPS_LENGTH,
        latent_dim: int = 128,
        depth: int = 15,
        doppler_node: int | None = None,
        doppler_scale: float = 30.0,
        warp_knots: int = 0,
        warp_init: float = 0.05,
    ):
        super().__init__()
        if latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {latent_dim}")
        if warp_knots < 0:
            raise ConfigError(f"warp_knots must be >= 0, got {warp_knots}")
        if doppler_node is not None and not 0 <= doppler_node < latent_dim:
            raise ConfigError(f"doppler_node must be in 0..{latent_dim - 1}, got {doppler_node}")
        if not doppler_scale > 0:
            raise ConfigError(f"doppler_scale must be > 0, got {doppler_scale}")
        self.n_pixels, self.latent_dim, self.depth = n_pixels, latent_dim, depth
        self.encoder = Encoder(n_pixels, latent_dim, depth)
        self.decoder = Decoder(n_pixels, latent_dim, depth)
        self.warp = Warp(n_pixels, latent_dim, warp_knots) if warp_knots else None
        self.doppler_node, self.doppler_scale = doppler_node, doppler_scale
        self.shift: DopplerShift | None = None  # set_wavelengths: the grid is the data's, not the network's
        init_weights(self)
        if self.warp is not None:  # small: training starts near no warp, yet codes get its gradient
            nn.init.normal_(self.warp.coef.weight, std=warp_init)

    @property
    def needs_wavelengths(self) -> bool:
        """True while a Doppler node waits for the grid's wavelengths."""
        return self.doppler_node is not None and self.shift is None

    def set_wavelengths(self, wave: np.ndarray) -> None:
        """The grid's ``(L,)`` pixel wavelengths (Å): what the Doppler node shifts along (no-op without one)."""
        if self.doppler_node is None:
            return
        if len(wave) != self.n_pixels:
            raise ConfigError(f"doppler_node needs one wavelength per input pixel ({self.n_pixels}), got {len(wave)}")
        self.shift = DopplerShift(wave)

    def encode(self, flux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectra ``(B, L)`` -> μ, clamped log σ², each ``(B, D)``."""
        return self.encoder(flux)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, D)`` -> spectra ``(B, L)`` (Doppler shifted when ``doppler_node`` is set)."""
        out = self.decoder(z)
        if self.warp is not None:
            out = self.warp(out, z)
        if self.doppler_node is None:
            return out
        if self.shift is None:
            raise ConfigError("doppler_node needs the grid's wavelengths: call set_wavelengths(grid.wavelength)")
        return self.shift(out, self.doppler_scale * z[:, self.doppler_node])


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal weights for LeakyReLU(0.1), zero biases.

    PyTorch's default init roughly halves the spread of activations per layer; through
    15 layers the differences between spectra (a few per cent of a continuum near 1)
    vanish and the encoder starts, and stays, blind (measured: σ(μ) across spectra
    ~1e-5 after training). This init keeps that spread through the stack.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
            nn.init.kaiming_normal_(
                m.weight,
                a=NEGATIVE_SLOPE,
                nonlinearity="leaky_relu",
                mode="fan_in" if not isinstance(m, nn.ConvTranspose1d) else "fan_out",
            )
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
