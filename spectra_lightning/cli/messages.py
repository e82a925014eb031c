"""What the command line says when something is the user's to fix: one line, never a traceback."""

from __future__ import annotations

import re

from spectra_lightning.common.errors import ConfigError
from spectra_lightning.model.module import NonFiniteLossError
from spectra_lightning.store import StoreError
from spectra_lightning.store.lock import StoreLockedError

# errors that are the user's to fix: printed as one line, never as a traceback
USER_ERRORS = (ConfigError, StoreError, StoreLockedError, NonFiniteLossError)


def user_error(exc: BaseException) -> BaseException | None:
    """The first of :data:`USER_ERRORS` in ``exc``'s chain (jsonargparse wraps errors raised while it
    instantiates a class into its own, multi-line ones)."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, USER_ERRORS):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def one_line_error(err: BaseException) -> str:
    """A user error's message on one line. Raised in a DataLoader worker, it arrives re-raised with the
    worker's traceback in its message ("Caught StoreError in DataLoader worker process 0 ... Original
    Traceback ..."): its last line is the original message."""
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1]
        text = re.sub(r"^[\w.]+(Error|Exception): ", "", text)
    return " ".join(text.split())


_BOILERPLATE = (
    "Does not validate against",
    "Subtypes:",
    "Errors:",
    "Given value",
    "Problem with given class_path",
    "Parser key",
)


def one_line(message: str) -> str:
    """A jsonargparse message in one line: the full key and the innermost specific reason, e.g.
    ``--data.synth.rv_dist: expected one of 'uniform', 'archive', got 'gauss'``."""
    lines = [line.strip().removeprefix("- ").strip() for line in str(message).strip().splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return "invalid arguments"
    keys = [m.group(1) for line in lines if (m := re.match(r'Parser key "(.+?)":', line))]
    reasons = [line for line in lines if not line.startswith(_BOILERPLATE) and "NoneType" not in line]
    if not keys:
        return plain(lines[0] if not reasons or reasons[0] in lines[0] else f"{lines[0]} {reasons[0]}")
    return f"--{'.'.join(keys)}: {plain(reasons[0] if reasons else lines[0])}"


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "text"}


def plain(reason: str) -> str:
    """jsonargparse's "Expected a <class 'int'>. Got value: abc" in a user's words: "expected an integer, got
    'abc'"; a Literal's choices as a list."""
    m = re.match(r"Expected a <class '(\w+)'>\. Got value: (.*)$", reason)
    if m and m.group(1) in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[m.group(1)]}, got {m.group(2)!r}"
    m = re.match(r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)$", reason)
    if m:
        return f"expected one of {m.group(1)}, got {m.group(2)!r}"
    return reason
