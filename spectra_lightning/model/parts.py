"""Parts the model composes (network, loss, KL schedule, optimizer), saved in a checkpoint as
``{"class_path", "init_args"}``, and the one way such a spec becomes an object.

A part records the arguments it was built with (:class:`Part` does it for plain classes; a network sets its own
``init_args``), so a checkpoint rebuilds the model however it was built: from YAML, from Python, or an old
checkpoint upgraded by :mod:`spectra_lightning.model.legacy`.

A spec read from a checkpoint or a config is data. :func:`resolve` turns it into a class only when

- its module is ours (``spectra_lightning``), a trusted home of the option's base (``torch.optim`` for optimizers
  and LR schedulers), or a module the user allowed by name (:func:`allow_modules`: ``--allow-module`` /
  ``--allow_modules``, or the ``SPECTRA_LIGHTNING_ALLOW_MODULES`` setting) — checked before anything is imported,
  since importing a module runs its code;
- and the object it names is a class, a subclass of the base the option expects — checked before it is called.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from spectra_lightning.common.errors import ConfigError

OWN_PACKAGE = "spectra_lightning"
ALLOW_ENV = "SPECTRA_LIGHTNING_ALLOW_MODULES"  # comma-separated module names whose classes specs may name
_allowed: set[str] = set()  # added by command-line options for this process


class Recorded:
    """Records the arguments a class is built with: ``init_args`` holds its constructor's arguments, defaults filled
    in, but those named in ``not_recorded`` (what the caller passes anew, like a network's length). What a
    checkpoint saves and :func:`build` rebuilds from: one way for every part."""

    init_args: dict[str, Any]
    not_recorded: tuple[str, ...] = ()

    def __new__(cls, *args: Any, **kwargs: Any):
        self = super().__new__(cls)
        # partial: copy and pickle make an object by calling __new__ without arguments (its state comes after)
        bound = inspect.signature(cls.__init__).bind_partial(self, *args, **kwargs)
        bound.apply_defaults()
        recorded = list(bound.arguments.items())[1:]
        self.init_args = {k: v for k, v in recorded if k not in cls.not_recorded}
        return self


class Part(Recorded):
    """Base of small configurable parts (losses, KL schedules): their constructor's arguments recorded."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.init_args.items())})"


def allow_modules(names: Iterable[str]) -> None:
    """Let specs name classes of these modules (and their submodules) in this process."""
    _allowed.update(n.strip() for n in names if n and n.strip())


@contextmanager
def allowing(names: Iterable[str] = ()) -> Iterator[None]:
    """Allow ``names`` (and whatever :func:`allow_modules` adds meanwhile) for the duration of a command only."""
    before = set(_allowed)
    allow_modules(names)
    try:
        yield
    finally:
        _allowed.clear()
        _allowed.update(before)


def allowed_modules() -> set[str]:
    """The modules the user allowed: options given in this process and ``SPECTRA_LIGHTNING_ALLOW_MODULES``."""
    return _allowed | {n.strip() for n in os.environ.get(ALLOW_ENV, "").split(",") if n.strip()}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def trusted_homes(base: type) -> tuple[str, ...]:
    """Packages whose classes an option of ``base`` may name without being allowed: ours, and torch's optimizers
    for an optimizer or LR scheduler."""
    import torch

    homes = [OWN_PACKAGE]
    if issubclass(base, (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)):
        homes.append("torch.optim")
    return tuple(homes)


def resolve(spec: Any, option: str, base: type) -> type:
    """The class a ``{"class_path", "init_args"}`` spec names, refused in one line (``option`` names where it was
    given) unless its module may be imported (see the module's docstring) and it is a subclass of ``base``."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class_path"), str):
        raise ConfigError(f"{option}: expected {{class_path, init_args}}, got {str(spec)[:120]!r}")
    if not isinstance(spec.get("init_args") or {}, dict):
        raise ConfigError(f"{option}: init_args of {spec['class_path']} must be a mapping")
    class_path = spec["class_path"]
    module, _, name = class_path.rpartition(".")
    allowed = any(_within(module, home) for home in (*trusted_homes(base), *allowed_modules()))
    if not module or not allowed:
        top = module.split(".")[0] or class_path
        raise ConfigError(
            f"{option}: {class_path!r} is not a {OWN_PACKAGE} class: a checkpoint or config may name another "
            f"module's class only if you allow that module (importing it runs its code): --allow-module {top} "
            f"(training commands: --allow_modules [{top}]) or {ALLOW_ENV}={top}"
        )
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"{option}: no class {class_path!r} to build") from None
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise ConfigError(f"{option}: {class_path!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    return obj


def build(spec: Any, option: str, base: type, *args: Any) -> Any:
    """The part described by ``{"class_path", "init_args"}`` (checked by :func:`resolve`), built with ``args``
    before its init args."""
    cls = resolve(spec, option, base)
    try:
        return cls(*args, **dict(spec.get("init_args") or {}))
    except TypeError as e:
        raise ConfigError(f"{option}: {spec['class_path']}: {e}") from None


def spec_of(part: object, option: str) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` that rebuild ``part``; a part without ``init_args`` is refused in one line
    (``option`` names where it was given, e.g. ``--model.net``)."""
    args = getattr(part, "init_args", None)
    if not isinstance(args, dict):
        raise ConfigError(
            f"{option}: {type(part).__name__} cannot be rebuilt from a checkpoint: give it an `init_args` dict "
            "(its constructor's arguments), or pass it as class_path/init_args"
        )
    return {"class_path": f"{type(part).__module__}.{type(part).__qualname__}", "init_args": dict(args)}


def add_allow_option(parser) -> None:
    """``--allow-module MODULE`` (repeatable) on a tool's ``argparse`` parser; :func:`allow_modules` takes it."""
    parser.add_argument(
        "--allow-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="let the checkpoint name model parts (loss, KL schedule, network) from this module of your own "
        f"(repeatable; importing it runs its code); also the setting {ALLOW_ENV}=a,b",
    )
