"""What the latent-metrics callback costs a fit, per recipe, against the callback as it was, in one run.

For each recipe, two fits with the same seed and data: the recipe as shipped, and the baseline the
callback used to be run with (scalars and every figure each epoch). Each fit prints its cost line (the
callback times itself: its seconds over the training seconds); the final reports must agree (same
informative nodes, MI within 0.01 nat), since the callback only reads the model.

    python benchmarks/metrics_cost.py --miles-store STORE --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import yaml
from report import publish

REPO = Path(__file__).resolve().parents[1]
COST = re.compile(
    r"latent metrics: ([\d.]+) s per evaluation \((\d+)\)(?: \+ ([\d.]+) s per figure set \((\d+)\))? = ([\d.]+) %"
)


def every_epoch(config: str, out: Path) -> list[str]:
    """An overlay config: the recipe's callbacks with LatentMetrics evaluating and drawing every epoch."""
    callbacks = yaml.safe_load((REPO / config).read_text())["trainer"]["callbacks"]
    for cb in callbacks:
        if cb["class_path"].endswith("LatentMetrics"):
            cb.setdefault("init_args", {}).update(every_n_epochs=1, figures_every_n_epochs=1)
    out.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    return ["--config", str(out)]


def fit(config: str, extra: list[str], run_dir: Path, overlay: list[str]) -> dict:
    """One fit in a fresh process; its cost line parsed and its report."""
    cmd = [sys.executable, "-m", "spectra_lightning", "fit", "--config", config, *overlay, *extra]
    cmd += [f"--trainer.default_root_dir={run_dir}", "--trainer.logger=false", "--trainer.enable_progress_bar=false"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"})
    if out.returncode:
        raise SystemExit(f"fit failed:\n{out.stderr[-2000:]}")
    m = COST.search(out.stdout)
    if m is None:
        raise SystemExit(f"no cost line in the output of {' '.join(cmd)}")
    scalars, n, figures, n_fig, percent = m.groups()
    report = json.loads((run_dir / "report.json").read_text())
    return {
        "scalars_s": float(scalars),
        "evaluations": int(n),
        "figures_s": float(figures) if figures else 0.0,
        "figure_sets": int(n_fig) if n_fig else 0,
        "percent": float(percent),
        "report": report,
    }


def same_results(a: dict, b: dict) -> tuple[bool, float]:
    """Same informative nodes, and the largest MI difference over labels (best node's MI)."""
    ra, rb = a["report"], b["report"]
    diff = max(
        abs((ra["mi"]["ksg"][k].get("best") or 0.0) - (rb["mi"]["ksg"][k].get("best") or 0.0)) for k in ra["mi"]["ksg"]
    )
    return ra["mad"]["informative"] == rb["mad"]["informative"], diff


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quickstart-epochs", type=int, default=9, help="epochs of the quickstart fits (recipe: 32)")
    p.add_argument("--miles-store", help="the MILES store (README: ingest ../shared/data/miles); omit to skip")
    p.add_argument("--out", help="append the section to this markdown file")
    a = p.parse_args()
    recipes = [("quickstart", "experiments/quickstart.yaml", [f"--trainer.max_epochs={a.quickstart_epochs}"])]
    if a.miles_store:
        recipes.append(("MILES", "experiments/miles.yaml", [f"--data.init_args.store={a.miles_store}"]))
    rows, checks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, config, extra in recipes:
            shipped = fit(config, extra, Path(tmp) / f"{name}-recipe", [])
            base = fit(config, extra, Path(tmp) / f"{name}-base", every_epoch(config, Path(tmp) / f"{name}.yaml"))
            for label, r in (("every epoch: scalars + figures (baseline)", base), ("the recipe as shipped", shipped)):
                rows.append(
                    f"| {name} | {label} | {r['evaluations']} × {r['scalars_s']:.2f} s | "
                    f"{r['figure_sets']} × {r['figures_s']:.1f} s | {r['percent']:.1f} % |"
                )
            same, diff = same_results(base, shipped)
            checks.append(
                f"{name}: informative nodes {'the same' if same else 'DIFFERENT'} "
                f"({shipped['report']['mad']['informative']}), largest MI difference {diff:.3f} nat."
            )
    lines = [
        f"## Latent-metrics cost per recipe ({date.today()})",
        "",
        f"`python benchmarks/metrics_cost.py --quickstart-epochs {a.quickstart_epochs}"
        + (" --miles-store STORE`" if a.miles_store else "`")
        + f". Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Each fit times its `LatentMetrics` callback (scalars: MAD, KL, KSG MI of every node with every label; "
        "figure sets: MAD stems, MI heatmap, pair MI, scatters, reconstructions, traversals) against its "
        "training time (first epoch to the last validation, the final report excluded). The baseline, run "
        "in the same invocation with the same seed, evaluates and draws every epoch.",
        "",
        "| recipe | callback settings | scalars | figure sets | cost on top of training |",
        "|---|---|---|---|---|",
        *rows,
        "",
        *checks,
    ]
    publish(lines, a.out)


if __name__ == "__main__":
    main()
