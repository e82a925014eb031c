"""The paper's 1-D convolutional (variational) autoencoder as plain ``nn.Module``s.

Sedaghat et al. (2021), Fig. 2: a 15-layer strided Conv1d encoder, two linear heads
(μ, log σ²) and a mirrored ConvTranspose1d decoder. ``depth`` keeps only the first
``depth`` encoder layers (and the matching decoder), so the same code builds the
full 327,680-px network and short CPU variants. No Lightning here, no lazy layers.
"""

from __future__ import annotations

import torch
from torch import nn

ENCODER_CHANNELS = (16, 16, 16, 32, 32, 32, 64, 64, 64, 128, 128, 128, 256, 512, 512)
ENCODER_KERNELS = (7, 5, 5) + (3,) * 12
NEGATIVE_SLOPE = 0.1
FULL_LENGTH = 327_680


def downsampling(depth: int) -> int:
    """Factor by which the encoder shrinks its input: every layer but the last has stride 2."""
    return 2 ** (depth - 1)


class Encoder(nn.Module):
    """Spectra ``(N, L)`` -> μ, log σ² each ``(N, latent_dim)``."""

    def __init__(self, n_pixels: int = FULL_LENGTH, latent_dim: int = 128, depth: int = 15):
        super().__init__()
        if not 2 <= depth <= len(ENCODER_CHANNELS):
            raise ValueError(f"depth must be in 2..{len(ENCODER_CHANNELS)}, got {depth}")
        if n_pixels % downsampling(depth):
            raise ValueError(
                f"n_pixels={n_pixels} is not divisible by 2**(depth-1)={downsampling(depth)}; "
                "pad the grid to a length the network accepts"
            )
        layers: list[nn.Module] = []
        c_in = 1
        for i in range(depth):
            k = ENCODER_KERNELS[i]
            c_out = ENCODER_CHANNELS[i]
            stride = 1 if i == depth - 1 else 2
            layers += [nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2),
                       nn.LeakyReLU(NEGATIVE_SLOPE)]
            c_in = c_out
        self.conv = nn.Sequential(*layers)
        self.bottleneck = (c_in, n_pixels // downsampling(depth))
        flat = c_in * self.bottleneck[1]
        self.mu = nn.Linear(flat, latent_dim)
        self.logvar = nn.Linear(flat, latent_dim)

    def forward(self, flux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(flux.unsqueeze(1)).flatten(1)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """Codes ``(N, latent_dim)`` -> spectra ``(N, L)``; mirrors :class:`Encoder`."""

    def __init__(self, n_pixels: int = FULL_LENGTH, latent_dim: int = 128, depth: int = 15):
        super().__init__()
        rev = list(reversed(ENCODER_CHANNELS[:depth])) + [1]
        self.bottleneck = (rev[0], n_pixels // downsampling(depth))
        self.linear = nn.Linear(latent_dim, rev[0] * self.bottleneck[1])
        layers: list[nn.Module] = [nn.ConvTranspose1d(rev[0], rev[1], 3, stride=1, padding=1),
                                   nn.LeakyReLU(NEGATIVE_SLOPE)]
        for c_in, c_out in zip(rev[1:-1], rev[2:]):
            layers += [nn.ConvTranspose1d(c_in, c_out, 4, stride=2, padding=1),
                       nn.LeakyReLU(NEGATIVE_SLOPE)]
        layers.append(nn.Conv1d(1, 1, 3, padding=1))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.linear(z).view(z.shape[0], *self.bottleneck)
        return self.deconv(h).squeeze(1)


class ConvAutoencoder(nn.Module):
    """Encoder + decoder; ``forward`` returns ``(reconstruction (N, L), μ, log σ²)``.

    The caller decides whether to decode μ or a reparameterised sample (see ``module.py``).
    """

    def __init__(self, n_pixels: int = FULL_LENGTH, latent_dim: int = 128, depth: int = 15):
        super().__init__()
        self.n_pixels, self.latent_dim, self.depth = n_pixels, latent_dim, depth
        self.encoder = Encoder(n_pixels, latent_dim, depth)
        self.decoder = Decoder(n_pixels, latent_dim, depth)
        init_weights(self)

    def forward(self, flux: torch.Tensor, sample: bool = False):
        mu, logvar = self.encoder(flux)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decoder(z), mu, logvar


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal weights for LeakyReLU(0.1), zero biases.

    PyTorch's default init roughly halves the spread of activations per layer; through
    15 layers the differences between spectra (a few per cent of a continuum near 1)
    vanish and the encoder starts, and stays, blind (measured: σ(μ) across spectra
    ~1e-5 after training). This init keeps that spread through the stack.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=NEGATIVE_SLOPE, nonlinearity="leaky_relu",
                                    mode="fan_in" if not isinstance(m, nn.ConvTranspose1d) else "fan_out")
            nn.init.zeros_(m.bias)


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
