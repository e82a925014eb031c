"""A network whose decoder can tell the star from the instrument (issue #43): a rest-frame stellar spectrum, moved
by a code-driven stellar velocity, multiplied by an observed-frame transmission, then moved as a whole by a
code-driven instrument drift — the order in which light meets the star, the atmosphere and the spectrograph.

What is built in, exactly:

- :class:`StellarShift`: the Doppler law (``physics.doppler.DopplerShift``), ``v = scale · drive`` km/s. The
  operator is the Doppler shift itself.
- :class:`Transmission`: ``T(λ) = exp(−a · τ(λ))``, one absorption spectrum ``τ ≥ 0`` fixed in the observed frame
  and learned from the data (``transmission="learned"``; ``"none"``: no such component), its depth
  ``a = softplus(drive + b)`` per spectrum. Nothing tells it where telluric lines are.
- :class:`InstrumentShift`: a recorded wavelength ``λ' = λ + zp + st · (λ − λ_mid)`` (a calibration zero-point and a
  dispersion stretch about the grid's middle, as ``ingest.synth`` draws them), ``zp`` and ``st`` each driven. It
  moves the whole observed spectrum, stellar and telluric lines alike.
- What drives the operators (``drivers``): :class:`CodeDirections`, one learned direction of the whole code per
  operator (which nodes drive which operator is learned; the star is drawn from every node), or
  :class:`DedicatedNodes`, node ``k`` alone drives operator ``k`` and the star is drawn from the other nodes (which
  node is which operator is given; what each node encodes is learned).

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
DRIVERS = ("directions", "nodes")
TAU_START = -6.0  # softplus(-6) ≈ 0.0025: training starts with next to no absorption, yet τ gets its gradient


class CodeDirections(nn.Module):
    """Each operator is driven by one learned direction of the whole code: ``drive_k (B,) = w_k · z``; the
    rest-frame star is drawn from the whole code. Which nodes drive an operator is the network's to find."""

    def __init__(self, latent_dim: int, operators: tuple[str, ...], init: float):
        super().__init__()
        self.operators, self.star_dim = operators, latent_dim
        self.weight = nn.Linear(latent_dim, len(operators), bias=False)
        nn.init.normal_(self.weight.weight, std=init)

    def forward(self, z: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Codes ``(B, D)`` -> each operator's drive ``(B,)``, and the star's code ``(B, D)``."""
        drive = self.weight(z)
        return {name: drive[:, k] for k, name in enumerate(self.operators)}, z

    def shares(self) -> dict[str, torch.Tensor]:
        w = self.weight.weight.abs()
        return {name: w[k] / w[k].sum() for k, name in enumerate(self.operators)}


class DedicatedNodes(nn.Module):
    """Operator ``k`` is driven by node ``k`` alone, through a learned gain: ``drive_k (B,) = g_k z_k``; the
    rest-frame star is drawn from the other ``D − K`` nodes, so a node that drives an operator draws nothing else.
    Built in: which node drives which operator. Left to the network: what each node encodes."""

    def __init__(self, latent_dim: int, operators: tuple[str, ...], init: float):
        super().__init__()
        if latent_dim <= len(operators):
            raise ConfigError(
                f"drivers='nodes' needs latent_dim > {len(operators)} (one node per operator: "
                f"{', '.join(operators)}; the star the rest), got {latent_dim}"
            )
        self.operators, self.star_dim = operators, latent_dim - len(operators)
        self.gain = nn.Parameter(torch.full((len(operators),), init))

    def forward(self, z: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        n = len(self.operators)
        return {name: self.gain[k] * z[:, k] for k, name in enumerate(self.operators)}, z[:, n:]

    def shares(self) -> dict[str, torch.Tensor]:
        eye = torch.eye(self.star_dim + len(self.operators), device=self.gain.device)
        return {name: eye[k] for k, name in enumerate(self.operators)}


class StellarShift(nn.Module):
    """The star's velocity ``v (B,) = scale · drive`` km/s, applied by the Doppler law to rest-frame spectra
    ``(B, L)`` (:class:`DopplerShift`, given the grid by :meth:`ObservedStar.set_wavelengths`)."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def velocity(self, drive: torch.Tensor) -> torch.Tensor:
        return self.scale * drive

    def forward(self, rest: torch.Tensor, drive: torch.Tensor, doppler: DopplerShift) -> torch.Tensor:
        return doppler(rest, self.velocity(drive))


class Transmission(nn.Module):
    """An observed-frame absorption ``exp(−a τ)``: ``τ (L,) ≥ 0`` learned (softplus of a free vector), its depth
    ``a (B,) = softplus(drive + b) ≥ 0``. ``forward(star (B, L), drive (B,))`` multiplies it in."""

    def __init__(self, n_pixels: int):
        super().__init__()
        self.tau_free = nn.Parameter(torch.full((n_pixels,), TAU_START))
        self.depth_bias = nn.Parameter(torch.zeros(1))

    @property
    def tau(self) -> torch.Tensor:
        return F.softplus(self.tau_free)

    def depth(self, drive: torch.Tensor) -> torch.Tensor:
        return F.softplus(drive + self.depth_bias)

    def forward(self, star: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
        return star * torch.exp(-self.depth(drive)[:, None] * self.tau[None, :])


class InstrumentShift(nn.Module):
    """The spectrograph's drift: ``out(λ) = in(λ − d(λ))``, ``d(λ) = zp + st · (λ − λ_mid)`` Å with ``zp =
    zp_scale · drive₀`` Å and ``st = stretch_scale · drive₁``, per spectrum; any grid (the displacement in pixels
    is ``d / Δλ`` at each pixel)."""

    def __init__(self, zp_scale: float, stretch_scale: float):
        super().__init__()
        self.scales = (zp_scale, stretch_scale)
        self.register_buffer("offset_aa", torch.zeros(0), persistent=False)  # λ − λ_mid (L,), set by set_wavelengths
        self.register_buffer("step_aa", torch.zeros(0), persistent=False)  # Δλ (L,)

    def set_wavelengths(self, wave: np.ndarray) -> None:
        wave = np.asarray(wave, np.float64)
        mid = 0.5 * (wave[0] + wave[-1])
        device = cast(torch.Tensor, self.get_buffer("offset_aa")).device
        self.offset_aa = torch.tensor(wave - mid, dtype=torch.float32, device=device)
        self.step_aa = torch.tensor(np.gradient(wave), dtype=torch.float32, device=device)

    def drift(self, zp_drive: torch.Tensor, stretch_drive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drives ``(B,)`` -> zero-point (Å) and stretch, each ``(B,)``."""
        return self.scales[0] * zp_drive, self.scales[1] * stretch_drive

    def forward(self, observed: torch.Tensor, zp_drive: torch.Tensor, stretch_drive: torch.Tensor) -> torch.Tensor:
        zp, st = self.drift(zp_drive, stretch_drive)
        offset, step = cast(torch.Tensor, self.offset_aa), cast(torch.Tensor, self.step_aa)
        return resample(observed, (zp[:, None] + st[:, None] * offset[None, :]) / step[None, :])


def upgrade_first_look_keys(module, state_dict, prefix, *_args) -> None:
    """Checkpoints written before the drivers were a part (0.5.0's first look, issue #43) kept one linear map per
    operator; here they become the rows of ``CodeDirections``: same numbers, new names."""
    old = [f"{prefix}stellar.direction.weight", f"{prefix}instrument.coef.weight"]
    if not all(k in state_dict for k in old):
        return
    rows = [state_dict.pop(old[0]), state_dict.pop(old[1])]
    depth_w, depth_b = f"{prefix}transmission.depth_map.weight", f"{prefix}transmission.depth_map.bias"
    if depth_w in state_dict:
        rows.append(state_dict.pop(depth_w))
        state_dict[f"{prefix}transmission.depth_bias"] = state_dict.pop(depth_b)
    state_dict[f"{prefix}drivers_map.weight.weight"] = torch.cat(rows)


class ObservedStar(SpectrumNet):
    """The paper's encoder, and a decoder that composes star, atmosphere and instrument (module docstring).

    ``forward`` returns ``(reconstruction (B, L), μ (B, D), log σ² (B, D))``; :meth:`components` reads, per
    spectrum, what each operator was driven to (``velocity`` km/s, ``zero_point`` Å, ``stretch``, ``depth``).

    Args:
        n_pixels: L, the grid's length (the module passes it).
        latent_dim: D, latent nodes.
        depth: encoder layers kept from the paper's 15.
        velocity_scale: km/s per unit of the stellar-velocity drive.
        zero_point_scale: Å per unit of the zero-point drive.
        stretch_scale: dispersion stretch per unit of its drive.
        transmission: ``"learned"`` (an observed-frame absorption learned from the data) or ``"none"``.
        drivers: what drives the operators: ``"directions"`` (:class:`CodeDirections`, a learned direction of the
            whole code each) or ``"nodes"`` (:class:`DedicatedNodes`: nodes 0, 1, 2 (, 3) drive the velocity, the
            zero-point, the stretch (and the depth), each alone; the star is drawn from the others).
        operator_init: the drives' maps start at this scale (``N(0, this²)`` weights, or this gain): near identity,
            but not 0 (at 0 no node ever drives them).
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
        drivers: str = "directions",
        operator_init: float = 0.05,
    ):
        super().__init__()
        if latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {latent_dim}")
        if transmission not in TRANSMISSIONS:
            raise ConfigError(f"transmission must be one of {', '.join(TRANSMISSIONS)}, got {transmission!r}")
        if drivers not in DRIVERS:
            raise ConfigError(f"drivers must be one of {', '.join(DRIVERS)}, got {drivers!r}")
        self.n_pixels, self.latent_dim = n_pixels, latent_dim
        operators = ("velocity", "zero_point", "stretch") + (("depth",) if transmission == "learned" else ())
        driver_class = CodeDirections if drivers == "directions" else DedicatedNodes
        self.drivers_map = driver_class(latent_dim, operators, operator_init)
        self.encoder = Encoder(n_pixels, latent_dim, depth)
        self.decoder = Decoder(n_pixels, self.drivers_map.star_dim, depth)
        for part in (self.encoder, self.decoder):  # not the drivers: they start at operator_init, not Kaiming's scale
            init_weights(part)
        self.stellar = StellarShift(velocity_scale)
        self.transmission = Transmission(n_pixels) if transmission == "learned" else None
        self.instrument = InstrumentShift(zero_point_scale, stretch_scale)
        self.doppler: DopplerShift | None = None  # set_wavelengths: the grid is the data's, not the network's
        self.register_load_state_dict_pre_hook(upgrade_first_look_keys)

    @property
    def needs_wavelengths(self) -> bool:
        return self.doppler is None

    def set_wavelengths(self, wave: np.ndarray) -> None:
        """The grid's ``(L,)`` pixel wavelengths (Å): what both shifts act along."""
        if len(wave) != self.n_pixels:
            raise ConfigError(f"ObservedStar needs one wavelength per input pixel ({self.n_pixels}), got {len(wave)}")
        self.doppler = DopplerShift(wave).to(self.encoder_device)
        self.instrument.set_wavelengths(wave)

    @property
    def encoder_device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def encode(self, flux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectra ``(B, L)`` -> μ, clamped log σ², each ``(B, D)``."""
        return self.encoder(flux)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, D)`` -> observed spectra ``(B, L)``: star, shifted; times the transmission; drifted."""
        if self.doppler is None:
            raise ConfigError("ObservedStar needs the grid's wavelengths: call set_wavelengths(grid.wavelength)")
        drive, star_code = self.drivers_map(z)
        return self.observe(self.decoder(star_code), drive)

    def observe(self, rest: torch.Tensor, drive: dict[str, torch.Tensor]) -> torch.Tensor:
        """A rest-frame stellar spectrum ``(B, L)`` as the operators' drives (each ``(B,)``) say it was observed."""
        star = self.stellar(rest, drive["velocity"], cast(DopplerShift, self.doppler))
        if self.transmission is not None:
            star = self.transmission(star, drive["depth"])
        return self.instrument(star, drive["zero_point"], drive["stretch"])

    def components(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """What codes ``(B, D)`` drive each operator to, each ``(B,)``."""
        drive, _ = self.drivers_map(z)
        zp, st = self.instrument.drift(drive["zero_point"], drive["stretch"])
        out = {"velocity": self.stellar.velocity(drive["velocity"]), "zero_point": zp, "stretch": st}
        if self.transmission is not None:
            out["depth"] = self.transmission.depth(drive["depth"])
        return out

    def drivers(self) -> dict[str, np.ndarray]:
        """Per operator, each node's share of what drives it ``(D,)`` (``|w_j| / Σ|w|``; one-hot for ``"nodes"``)."""
        return {k: v.detach().cpu().numpy() for k, v in self.drivers_map.shares().items()}
