"""What ``fit --help`` adds to jsonargparse's own help: the data modules' options and the model parts' classes,
one line each, drawn from the classes themselves (their docstrings' ``Args:``, the subclasses of each part's base
in this package) so the help lists what exists."""

from __future__ import annotations

import inspect
import re

from jsonargparse import DefaultHelpFormatter

from spectra_lightning.cli.names import PROG
from spectra_lightning.data_modules import SpectraDataModule, StreamingSpectraDataModule
from spectra_lightning.model.bases import PART_BASES
from spectra_lightning.model.parts import OWN_PACKAGE


class HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with the epilog's lines kept as written (one option per line)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


def documented_args(cls: type) -> dict[str, str]:
    """``{parameter: help}`` from a class's docstring ``Args:`` section (what jsonargparse shows as help)."""
    entries: dict[str, str] = {}
    last = None
    for line in (inspect.getdoc(cls) or "").split("Args:", 1)[-1].splitlines():
        m = re.match(r"^ {4}(\w+): (.+)$", line)
        if m:
            last = m[1]
            entries[last] = m[2]
        elif last and line.startswith(" " * 8):
            entries[last] += " " + line.strip()  # the entry's next line
    return entries


def short(text: str) -> str:
    """A help text's first sentence, without reST markup."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", " ".join(text.split()).replace("``", ""))
    return re.split(r"(?<!al)\. ", text)[0].rstrip(".")


def part_classes(base: type) -> list[type]:
    """The classes of this package an option of ``base`` may name: its subclasses, the base itself when it is one
    to use (not an abstract one whose methods raise)."""
    found, todo = [], [base]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith(OWN_PACKAGE + ".") and cls is not base and not cls.__name__.startswith("_"):
            found.append(cls)
    return sorted(set(found), key=lambda c: (c.__module__, c.__name__))


def data_help() -> list[str]:
    common = documented_args(SpectraDataModule)
    streaming = {k: v for k, v in documented_args(StreamingSpectraDataModule).items() if k not in common}
    names = f"{SpectraDataModule.__name__} (map-style) or {StreamingSpectraDataModule.__name__}"
    out = [f"data options (--data.class_path: {names}):"]
    out += [f"  --data.init_args.{k:16s} {short(v)}" for k, v in common.items()]
    out.append(f"  only {StreamingSpectraDataModule.__name__}:")
    out += [f"  --data.init_args.{k:16s} {short(v)}" for k, v in streaming.items()]
    out.append(
        f"all of them: {PROG} fit --data.help {SpectraDataModule.__name__} (or {StreamingSpectraDataModule.__name__})"
    )
    return out


def parts_help() -> list[str]:
    out = ["\nmodel parts (--model.net / .loss / .kl_schedule: a class_path and its init_args):"]
    for part in ("net", "loss", "kl_schedule"):
        for cls in part_classes(PART_BASES[part]):
            summary = short((inspect.getdoc(cls) or "").split("\n\n")[0])
            out.append(f"  {part}: {cls.__module__}.{cls.__name__} - {summary}")
            params = [p for p in inspect.signature(cls).parameters if p != "n_pixels"]
            docs = documented_args(cls)
            out += [f"    --model.{part}.init_args.{p:15s} {short(docs.get(p, ''))}" for p in params]
    out.append(f"a part's options in full: {PROG} fit --model.loss.help SquaredError (or another class)")
    out.append("a class of your own: name its module with --allow_modules [MODULE] (docs/architecture.md: a new loss)")
    return out


def options_help() -> str:
    """The data modules' options and the model parts' classes and options, which ``--help`` otherwise hides
    behind ``--data.help CLASS`` / ``--model.loss.help CLASS``: one line each."""
    return "\n".join([*data_help(), *parts_help()])
