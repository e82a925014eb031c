"""KL schedules: the weight λ of the KL term, and the term's form, over training.

A schedule is a small :class:`KLSchedule` subclass named in YAML (``model.kl_schedule: {class_path, init_args}``).
Times are in one ``unit`` per schedule, by name: ``fraction`` (of the run's optimizer steps, 0–1) or ``steps``.
``weight`` is always the final λ: the one in ``val/objective``, the quantity checkpoints and sweeps compare.
"""

from __future__ import annotations

from typing import Literal

import torch

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.model.parts import Part

Unit = Literal["fraction", "steps"]


class KLSchedule(Part):
    """The base of schedules: λ·KL with a constant λ (override :meth:`kl_weight` or :meth:`term`).

    Args:
        weight: λ, the KL weight (per spectrum; its size depends on the loss's normalisation).
        unit: the unit of the schedule's times: ``fraction`` of all optimizer steps, or ``steps``.
    """

    def __init__(self, weight: float = 0.3, unit: Unit = "fraction"):
        if not weight >= 0:
            raise ConfigError(f"--model.kl_schedule weight must be >= 0, got {weight}")
        if unit not in ("fraction", "steps"):
            raise ConfigError(f"--model.kl_schedule unit must be 'fraction' or 'steps', got {unit!r}")
        self.weight, self.unit = float(weight), unit

    def _time(self, name: str, value: float) -> float:
        """A time option checked against the unit."""
        ok = 0 <= value <= 1 if self.unit == "fraction" else value >= 0
        if not ok:
            want = "in 0..1 (unit: fraction)" if self.unit == "fraction" else ">= 0 (unit: steps)"
            raise ConfigError(f"--model.kl_schedule {name} must be {want}, got {value}")
        return float(value)

    def steps(self, value: float, total: int | None) -> float:
        """A time in optimizer steps; a fraction of an unknown total (no trainer, an unbounded run) is 0."""
        if self.unit == "steps":
            return value
        return value * total if total else 0.0

    def kl_weight(self, step: int, total: int | None) -> float:
        """λ at optimizer step ``step`` of ``total``: what ``val/loss`` uses and ``train/kl_weight`` logs."""
        return self.weight

    def term(self, kl: torch.Tensor, step: int, total: int | None) -> torch.Tensor:
        """The training loss's KL term from the batch's KL (nats, summed over nodes)."""
        return self.kl_weight(step, total) * kl


class Constant(KLSchedule):
    """λ·KL with a constant λ from the first step.

    Args:
        weight: λ, the KL weight.
        unit: unused (a constant has no times); kept so that every schedule takes it.
    """


class LinearWarmup(KLSchedule):
    """λ ramps linearly from 0 at ``start`` to ``weight`` at ``start + length`` (Bowman et al. 2016's KL annealing).

    Args:
        weight: the final λ.
        start: when the ramp starts (λ = 0 before).
        length: how long it takes (0: a step from 0 to ``weight`` at ``start``).
        unit: ``fraction`` of all optimizer steps, or ``steps``.
    """

    def __init__(self, weight: float = 0.3, start: float = 0.0, length: float = 0.3, unit: Unit = "fraction"):
        super().__init__(weight, unit)
        self.start, self.length = self._time("start", start), self._time("length", length)

    def kl_weight(self, step: int, total: int | None) -> float:
        start, length = self.steps(self.start, total), self.steps(self.length, total)
        if length <= 0:
            return self.weight if step >= start else 0.0
        return self.weight * min(max((step - start) / length, 0.0), 1.0)


class CapacityAnnealing(KLSchedule):
    """Capacity annealing (Burgess et al. 2018), then the plain KL: until ``until`` the term is
    ``capacity_weight · |KL − C|`` with the target C growing linearly from 0 to ``capacity`` nats over ``grow``,
    so the code takes on information in the order it lowers the reconstruction error; after it, ``weight · KL``,
    which prunes what the capacity phase kept twice. ``val/loss`` and ``val/objective`` use ``weight · KL``
    throughout.

    Args:
        weight: λ of the plain phase (and of the objective).
        capacity: the final target C, nats.
        grow: how long C grows from 0 to ``capacity``.
        capacity_weight: the weight of ``|KL − C|``.
        until: when the capacity phase ends (None: never).
        unit: ``fraction`` of all optimizer steps, or ``steps``.
    """

    def __init__(
        self,
        weight: float = 60.0,
        capacity: float = 4.0,
        grow: float = 0.58,
        capacity_weight: float = 300.0,
        until: float | None = 0.727,
        unit: Unit = "fraction",
    ):
        super().__init__(weight, unit)
        if not capacity >= 0 or not capacity_weight >= 0:
            raise ConfigError(
                f"--model.kl_schedule capacity and capacity_weight must be >= 0, got {capacity}, {capacity_weight}"
            )
        self.capacity, self.capacity_weight = float(capacity), float(capacity_weight)
        self.grow = self._time("grow", grow)
        self.until = None if until is None else self._time("until", until)

    def target(self, step: int, total: int | None) -> float | None:
        """C at this step, or None once the capacity phase is over."""
        if self.until is not None and step >= self.steps(self.until, total) and (total or self.unit == "steps"):
            return None
        grow = self.steps(self.grow, total)
        return self.capacity * min(step / grow, 1.0) if grow > 0 else self.capacity

    def term(self, kl: torch.Tensor, step: int, total: int | None) -> torch.Tensor:
        c = self.target(step, total)
        return self.weight * kl if c is None else self.capacity_weight * (kl - c).abs()
