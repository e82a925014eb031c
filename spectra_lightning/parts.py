"""Parts the model composes (network, loss, KL schedule), saved in a checkpoint as ``{"class_path", "init_args"}``.

A part records the arguments it was built with (:class:`Part` does it for plain classes; a network sets its own
``init_args``), so a checkpoint rebuilds the model however it was built: from YAML, from Python, or an old
checkpoint upgraded by :mod:`spectra_lightning.legacy`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from .errors import ConfigError


class Part:
    """Base of small configurable parts: ``init_args`` holds the constructor's arguments, defaults filled in."""

    init_args: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any):
        self = super().__new__(cls)
        bound = inspect.signature(cls.__init__).bind(self, *args, **kwargs)
        bound.apply_defaults()
        self.init_args = {k: v for k, v in list(bound.arguments.items())[1:]}
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.init_args.items())})"


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


def build(spec: dict[str, Any], option: str, *args: Any) -> Any:
    """The part described by ``{"class_path", "init_args"}``, built with ``args`` before its init args."""
    module, _, name = str(spec.get("class_path", "")).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"{option}: no class {spec.get('class_path')!r} to build") from None
    try:
        return cls(*args, **dict(spec.get("init_args") or {}))
    except TypeError as e:
        raise ConfigError(f"{option}: {spec['class_path']}: {e}") from None
