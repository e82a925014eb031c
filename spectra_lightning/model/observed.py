"""A network whose decoder can tell the star from the instrument (issue #43): a rest-frame stellar spectrum, moved
by a code-driven stellar velocity, multiplied by an observed-frame transmission, then moved as a whole by a
code-driven instrument drift — the order in which light meets the star, the atmosphere and the spectrograph.

What is built in, exactly:

- :class:`StellarShift`: the Doppler law (``physics.doppler.DopplerShift``), ``v = scale · (w · z)`` km/s with ``w``
  one learned direction in code space. The operator is the Doppler shift itself; which nodes drive it is learned.
- :class:`Transmission`: ``T(λ) = exp(−a(z) · τ(λ))``, one absorption spectrum ``τ ≥ 0`` fixed in the observed frame
  and learned from the data (``transmission="learned"``; ``"none"``: no such component), its depth
  ``a(z) = softplus(w · z + b)`` per spectrum. Nothing tells it where telluric lines are.
- :class:`InstrumentShift`: a recorded wavelength ``λ' = λ + zp + st · (λ − λ_mid)`` (a calibration zero-point and a
  dispersion stretch about the grid's middle, as ``ingest.synth`` draws them), ``(zp, st)`` a learned linear map of
  the code. It moves the whole observed spectrum, stellar and telluric lines alike.

On the stellar lines alone a zero-point and a stretch together span every affine displacement, Doppler's
included: only the transmission, moved by the drift and not by the star, tells the two shifts apart. Whether a
trained model uses it is what ``docs/results`` measures.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.model.nets import Decoder, Encoder, SpectrumNet, init_weights
from spectra_lightning.physics.doppler import DopplerShift, resample

TRANSMISSIONS = ("learned", "none")
TAU_START = -6.0  # softplus(-6) ≈ 0.0025: training starts with next to no absorption, yet τ gets its gradient


class StellarShift(nn.Module):
    """The star's velocity ``v (B,) = scale · (w · z)`` km/s from codes ``(B, D)``, applied by the Doppler law to
    rest-frame spectra ``(B, L)`` (:class:`DopplerShift`, given the grid by :meth:`ObservedStar.set_wavelengths`)."""

    def __init__(self, latent_dim: int, scale: float, init: float):
        super().__init__()
        self.scale = scale
        self.direction = nn.Linear(latent_dim, 1, bias=False)
        nn.init.normal_(self.direction.weight, std=init)

    def velocity(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * self.direction(z)[:, 0]

    def forward(self, rest: torch.Tensor, z: torch.Tensor, doppler: DopplerShift) -> torch.Tensor:
        return doppler(rest, self.velocity(z))


class Transmission(nn.Module):
    """An observed-frame absorption ``exp(−a(z) τ)``: ``τ (L,) ≥ 0`` learned (softplus of a free vector), its depth
    ``a (B,) ≥ 0`` a softplus of a linear map of the code. ``forward(star (B, L), z)`` multiplies it in."""

    def __init__(self, n_pixels: int, latent_dim: int, init: float):
        super().__init__()
        self.tau_free = nn.Parameter(torch.full((n_pixels,), TAU_START))
        self.depth_map = nn.Linear(latent_dim, 1)
        nn.init.normal_(self.depth_map.weight, std=init)
        nn.init.zeros_(self.depth_map.bias)

    @property
    def tau(self) -> torch.Tensor:
        return F.softplus(self.tau_free)

    def depth(self, z: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.depth_map(z)[:, 0])

    def forward(self, star: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return star * torch.exp(-self.depth(z)[:, None] * self.tau[None, :])


class InstrumentShift(nn.Module):
    """The spectrograph's drift: ``out(λ) = in(λ − d(λ))``, ``d(λ) = zp + st · (λ − λ_mid)`` Å with ``zp =
    zp_scale · (w₀ · z)`` Å and ``st = stretch_scale · (w₁ · z)``, per spectrum; any grid (the displacement in
    pixels is ``d / Δλ`` at each pixel)."""

    def __init__(self, latent_dim: int, zp_scale: float, stretch_scale: float, init: float):
        super().__init__()
        self.scales = (zp_scale, stretch_scale)
        self.coef = nn.Linear(latent_dim, 2, bias=False)
        nn.init.normal_(self.coef.weight, std=init)
        self.register_buffer("offset_aa", torch.zeros(0), persistent=False)  # λ − λ_mid (L,), set by set_wavelengths
        self.register_buffer("step_aa", torch.zeros(0), persistent=False)  # Δλ (L,)

    def set_wavelengths(self, wave: np.ndarray) -> None:
        wave = np.asarray(wave, np.float64)
        mid = 0.5 * (wave[0] + wave[-1])
        self.offset_aa = torch.tensor(wave - mid, dtype=torch.float32, device=self.coef.weight.device)
        self.step_aa = torch.tensor(np.gradient(wave), dtype=torch.float32, device=self.coef.weight.device)

    def drift(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``(B, D)`` -> zero-point (Å) and stretch, each ``(B,)``."""
        c = self.coef(z)
        return self.scales[0] * c[:, 0], self.scales[1] * c[:, 1]

    def forward(self, observed: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        zp, st = self.drift(z)
        offset, step = cast(torch.Tensor, self.offset_aa), cast(torch.Tensor, self.step_aa)
        return resample(observed, (zp[:, None] + st[:, None] * offset[None, :]) / step[None, :])


class ObservedStar(SpectrumNet):
    """The paper's encoder, and a decoder that composes star, atmosphere and instrument (module docstring).

    ``forward`` returns ``(reconstruction (B, L), μ (B, D), log σ² (B, D))``; :meth:`components` reads, per
    spectrum, what each operator was driven to (``velocity`` km/s, ``zero_point`` Å, ``stretch``, ``depth``).

    Args:
        n_pixels: L, the grid's length (the module passes it).
        latent_dim: D, latent nodes.
        depth: encoder layers kept from the paper's 15.
        velocity_scale: km/s per unit of the stellar-velocity direction.
        zero_point_scale: Å per unit of the zero-point direction.
        stretch_scale: dispersion stretch per unit of its direction.
        transmission: ``"learned"`` (an observed-frame absorption learned from the data) or ``"none"``.
        operator_init: the operators' code maps start at N(0, this²): near identity, but not 0 (at 0 no node
            ever drives them).
    """

    def __init__(
        self,
        n_pixels: int,
        latent_dim: int = 32,
        depth: int = 8,
        velocity_scale: float = 100.0,
        zero_point_scale: float = 0.5,
        stretch_scale: float = 3e-4,
        transmission: str = "learned",
        operator_init: float = 0.05,
    ):
        super().__init__()
        if latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {latent_dim}")
        if transmission not in TRANSMISSIONS:
            raise ConfigError(f"transmission must be one of {', '.join(TRANSMISSIONS)}, got {transmission!r}")
        self.n_pixels, self.latent_dim = n_pixels, latent_dim
        self.encoder = Encoder(n_pixels, latent_dim, depth)
        self.decoder = Decoder(n_pixels, latent_dim, depth)
        init_weights(self)  # before the operators: their maps start small (operator_init), not at Kaiming's scale
        self.stellar = StellarShift(latent_dim, velocity_scale, operator_init)
        self.transmission = Transmission(n_pixels, latent_dim, operator_init) if transmission == "learned" else None
        self.instrument = InstrumentShift(latent_dim, zero_point_scale, stretch_scale, operator_init)
        self.doppler: DopplerShift | None = None  # set_wavelengths: the grid is the data's, not the network's

    @property
    def needs_wavelengths(self) -> bool:
        return self.doppler is None

    def set_wavelengths(self, wave: np.ndarray) -> None:
        """The grid's ``(L,)`` pixel wavelengths (Å): what both shifts act along."""
        if len(wave) != self.n_pixels:
            raise ConfigError(f"ObservedStar needs one wavelength per input pixel ({self.n_pixels}), got {len(wave)}")
        self.doppler = DopplerShift(wave).to(self.stellar.direction.weight.device)
        self.instrument.set_wavelengths(wave)

    def encode(self, flux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectra ``(B, L)`` -> μ, clamped log σ², each ``(B, D)``."""
        return self.encoder(flux)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, D)`` -> observed spectra ``(B, L)``: star, shifted; times the transmission; drifted."""
        if self.doppler is None:
            raise ConfigError("ObservedStar needs the grid's wavelengths: call set_wavelengths(grid.wavelength)")
        return self.observe(self.decoder(z), z)

    def observe(self, rest: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """A rest-frame stellar spectrum ``(B, L)`` as codes ``(B, D)`` say it was observed."""
        star = self.stellar(rest, z, cast(DopplerShift, self.doppler))
        if self.transmission is not None:
            star = self.transmission(star, z)
        return self.instrument(star, z)

    def components(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """What codes ``(B, D)`` drive each operator to, each ``(B,)``."""
        zp, st = self.instrument.drift(z)
        out = {"velocity": self.stellar.velocity(z), "zero_point": zp, "stretch": st}
        if self.transmission is not None:
            out["depth"] = self.transmission.depth(z)
        return out

    def drivers(self) -> dict[str, np.ndarray]:
        """Per operator direction, each node's share of its weight ``|w_j| / Σ|w|`` ``(D,)``: which nodes drive it."""
        rows = {"velocity": self.stellar.direction.weight[0], "zero_point": self.instrument.coef.weight[0]}
        rows["stretch"] = self.instrument.coef.weight[1]
        if self.transmission is not None:
            rows["depth"] = self.transmission.depth_map.weight[0]
        return {k: (w.abs() / w.abs().sum()).detach().cpu().numpy() for k, w in rows.items()}
