"""``export RUN``: one model file to share, and its model card.

The model file is a slim checkpoint — the weights, the model's settings, and the card as data — that every
reader of checkpoints reads with the same checks (``model.checkpoint_file``: weights only, nothing imported
that is not ours); no optimizer state, no callback state. The card (``NAME.md`` beside it, and inside the file)
says what the model was trained on and what its run measured: the grid, the recipe (the model's parts), the
data, the informative nodes and the run's test-split table, and the file's SHA-256 (``sl.load(url,
sha256=...)`` checks it).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from spectra_lightning.analysis.runs import final_checkpoint
from spectra_lightning.common.files import replacing, write_atomic
from spectra_lightning.common.run_layout import report_file
from spectra_lightning.common.version import VERSION
from spectra_lightning.metrics.report import format_summary
from spectra_lightning.model.checkpoint_file import CHECKPOINT_FORMAT, CheckpointError, read_checkpoint

CARD_FORMAT = "spectra_lightning.model_card"  # a data format name, not a module path
CARD_KEY = "model_card"  # where the card sits inside the model file


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_description(run: Path) -> dict[str, Any]:
    """What the run trained on, from its config: the data module, and its store's name or its synthetic set's
    settings (a store's folder is the user's machine path: only its name is kept)."""
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
    data = config.get("data") or {}
    init = data.get("init_args") or {}
    out: dict[str, Any] = {"module": str(data.get("class_path", "")).rsplit(".", 1)[-1]}
    if init.get("store"):
        out["store"] = Path(str(init["store"]).rstrip("/")).name
    if init.get("synth"):
        out["synthetic"] = init["synth"]
    if init.get("labels"):
        out["labels"] = list(init["labels"])
    return out


def model_card(run: Path, hparams: dict, report: dict | None) -> dict[str, Any]:
    """The card as data (JSON-able): every field a reader of the model may need without its run."""
    recipe = {k: hparams[k] for k in ("net", "loss", "kl_schedule") if k in hparams}
    return {
        "format": CARD_FORMAT,
        "version": 1,
        "run": run.name,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "spectra_lightning": VERSION,
        "grid": hparams.get("grid"),
        "n_pixels": hparams.get("n_pixels"),
        "latent_dim": (hparams.get("net") or {}).get("init_args", {}).get("latent_dim"),
        "recipe": json.loads(json.dumps(recipe, default=str)),
        "data": data_description(run),
        "informative": list(report["mad"]["informative"]) if report else None,
        "split": (report or {}).get("split"),
        "n_spectra": (report or {}).get("n_spectra"),
        "summary": format_summary(report) if report else None,
    }


def card_markdown(card: dict[str, Any], file_name: str, sha256: str) -> str:
    """The card as a page a person reads."""
    lines = [
        f"# Model card: {file_name}",
        "",
        f"- **File**: `{file_name}`, SHA-256 `{sha256}`",
        f"- **Made by**: spectra_lightning {card['spectra_lightning']} (`export`, {card['created']}), "
        f"run `{card['run']}`",
        f"- **Grid**: `{json.dumps(card['grid'])}` ({card['n_pixels']} px)",
        f"- **Latent nodes**: {card['latent_dim']}; informative on the run's {card['split'] or '?'} split: "
        f"{card['informative'] if card['informative'] is not None else 'unknown (the run has no report)'}",
        f"- **Data**: `{json.dumps(card['data'])}`",
        "",
        "## Recipe (the model's parts)",
        "",
        "```yaml",
        yaml.safe_dump(card["recipe"], sort_keys=False).rstrip(),
        "```",
        "",
        "## What its run measured",
        "",
        "```",
        card["summary"] or "(no report.json in the run: nothing measured)",
        "```",
        "",
        "Load it: `import spectra_lightning as sl; model = sl.load(PATH_OR_URL, sha256=...)` (docs/api.md).",
        "",
    ]
    return "\n".join(lines)


def export(run: str | Path, output: str | Path, checkpoint: str | Path | None = None) -> tuple[Path, Path, str]:
    """Write ``output`` (the model file) and the card beside it (``.md``) for ``run`` (its final checkpoint,
    which its report describes, unless ``checkpoint``); returns both paths and the file's SHA-256."""
    run, output = Path(run), Path(output)
    ckpt = Path(checkpoint) if checkpoint else final_checkpoint(run)
    if output.suffix != ".ckpt":
        raise ValueError(f"{output}: the model file's name must end in .ckpt (its card is written beside it as .md)")
    read = read_checkpoint(ckpt)
    report_path = report_file(run)
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    hparams = read["hyper_parameters"]
    card = model_card(run, hparams, report)
    payload = {
        "state_dict": read["state_dict"],
        "hyper_parameters": hparams,
        "spectra_lightning_format": CHECKPOINT_FORMAT,
        "pytorch-lightning_version": read.get("pytorch-lightning_version", ""),
        CARD_KEY: card,
    }
    with replacing(output) as tmp:
        torch.save(payload, tmp)
    digest = sha256_of(output)
    card_path = write_atomic(output.with_suffix(".md"), card_markdown(card, output.name, digest))
    return output, card_path, digest


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning export",
        description="Write a finished run's model as one file to share (weights, settings, card) and its model "
        "card (NAME.md: grid, recipe, data, informative nodes, the run's test-split table, the file's SHA-256).",
    )
    p.add_argument("run", help="run directory of a finished fit (its checkpoints/last.ckpt and report.json)")
    p.add_argument("--output", required=True, help="model file to write (NAME.ckpt; NAME.md is written beside it)")
    p.add_argument("--ckpt", help="another checkpoint of the run than last.ckpt (the report describes last.ckpt)")
    a = p.parse_args(argv)
    try:
        model, card, digest = export(a.run, a.output, a.ckpt)
    except (OSError, ValueError, CheckpointError) as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {model} (sha256 {digest}) and its card {card}")
    return 0
