"""``sweep``: run a W&B sweep YAML locally, without a W&B server; ``sweep-report``: Figure 4.

The YAML is the one ``wandb sweep`` takes: ``method`` (grid | random), ``parameters``
(dotted LightningCLI paths with ``values``/``value`` or, for random, ``min``/``max`` and
``distribution``), and a ``command`` using ``${env}``, ``${interpreter}``, ``${program}``
and ``${args}`` (-> ``--model.kl_schedule.init_args.weight=0.3 ...``). Each run is a real ``fit`` in its own
process and directory ``DIR/<run name>``; results are appended to ``DIR/results.csv`` as
runs finish; finished runs are skipped on a rerun, failed ones are recorded and retried.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import math
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from spectra_lightning.common.files import write_atomic
from spectra_lightning.common.run_layout import override_name, report_file
from spectra_lightning.metrics.latent import MAD_THRESHOLD
from spectra_lightning.physics.labels import (
    LABELS,  # what a sweep table records per run: the synthetic labels (others where present)
)


def load_sweep(path: str | Path) -> dict:
    try:
        spec = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read sweep YAML ({e})") from None
    for key in ("method", "parameters", "command"):
        if key not in spec:
            raise ValueError(f"{path}: missing {key!r}")
    if spec["method"] not in ("grid", "random"):
        raise ValueError(f"{path}: method {spec['method']!r} is not supported locally (grid or random)")
    return spec


def draw(spec: dict, count: int | None = None, seed: int = 0) -> list[dict]:
    """Parameter sets of the sweep: the full grid, or ``count`` random draws."""
    params = spec["parameters"]
    if spec["method"] == "grid":
        names = list(params)
        choices = [p["values"] if "values" in p else [p["value"]] for p in params.values()]
        runs = [dict(zip(names, combo)) for combo in itertools.product(*choices)]
        return runs[:count] if count else runs
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(count or 10):
        run = {}
        for name, p in params.items():
            if "values" in p:
                run[name] = p["values"][int(rng.integers(len(p["values"])))]
            elif "value" in p:
                run[name] = p["value"]
            else:
                lo, hi, dist = p["min"], p["max"], p.get("distribution", "uniform")
                if dist in ("log_uniform_values", "log_uniform"):
                    v = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
                elif dist == "int_uniform" or isinstance(lo, int) and isinstance(hi, int) and dist == "uniform":
                    v = int(rng.integers(lo, hi + 1))
                else:
                    v = float(rng.uniform(lo, hi))
                run[name] = v
        runs.append(run)
    return runs


def run_name(params: dict) -> str:
    return ",".join(f"{override_name(k)}={v}" for k, v in params.items())


def command(spec: dict, params: dict) -> list[str]:
    """The sweep's ``command`` with the macros expanded for ``params``."""
    args = [f"--{k}={v}" for k, v in params.items()]
    out = []
    for item in spec["command"]:
        if item == "${env}":
            continue
        if item == "${interpreter}":
            out.append(sys.executable)
        elif item == "${program}":
            out.append(spec.get("program", ""))
        elif item == "${args}":
            out.extend(args)
        elif item == "${args_no_hyphens}":
            raise ValueError("${args_no_hyphens} does not work with LightningCLI; use ${args}")
        else:
            out.append(str(item))
    return out


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summarise(run_dir: Path) -> dict:
    """The numbers a sweep table needs from a finished run's report.json: its validation split's (a sweep
    compares runs; the test split is kept for the claims), with the split named."""
    full = json.loads(report_file(run_dir).read_text())
    report = full.get("validation") or full
    row = {
        "split": report.get("split") or "val",
        "n_informative": len(report["mad"]["informative"]),
        "mad": json.dumps([round(v, 5) for v in report["mad"]["values"]]),
        "val_loss": full.get("fit", {}).get("val_loss"),
        "kl_weight": full.get("fit", {}).get("kl_weight"),
        "latent_dim": full.get("fit", {}).get("latent_dim"),
    }
    for label in LABELS:
        e = report["mi"].get("ksg", {}).get(label, {})
        row[f"mi_{label}"] = e.get("best")
        row[f"node_{label}"] = e.get("best_node")
    return row


FIELDS = ["run", "status", "returncode", "seconds", "params", "split", "kl_weight", "latent_dim", "n_informative"]
FIELDS += ["val_loss", "mad"] + [f"{p}_{label}" for label in LABELS for p in ("mi", "node")]


def run_sweep(
    path: str,
    out_dir: str | None = None,
    parallel: int = 1,
    count: int | None = None,
    dry_run: bool = False,
    seed: int = 0,
    extra: list[str] | None = None,
) -> list[dict]:
    spec = load_sweep(path)
    name = spec.get("name") or Path(path).stem
    out = Path(out_dir or Path("runs") / "sweeps" / name)
    runs = draw(spec, count, seed)
    table = out / "results.csv"
    done = {r["run"] for r in read_results(table) if r["status"] == "ok"}
    todo = [p for p in runs if run_name(p) not in done]
    if dry_run:
        for p in runs:
            state = "done" if run_name(p) in done else "todo"
            print(f"[{state}] {' '.join(command(spec, p) + (extra or []))}")
        return []
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.yaml").write_text(yaml.safe_dump(spec))
    lock = threading.Lock()
    print(f"sweep {name}: {len(runs)} runs, {len(runs) - len(todo)} already done, results in {table}", flush=True)

    def one(params: dict) -> dict:
        rname = run_name(params)
        run_dir = out / rname
        cmd = command(spec, params) + [f"--trainer.default_root_dir={run_dir}"] + (extra or [])
        env = {**os.environ, "WANDB_RUN_GROUP": name, "WANDB_NAME": rname}
        env.pop("SPECTRA_LIGHTNING_RUN_DIR", None)
        run_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        with open(run_dir / "log.txt", "w") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        row = {
            "run": rname,
            "returncode": rc,
            "seconds": round(time.perf_counter() - t, 1),
            "params": json.dumps(params),
        }
        try:
            row |= summarise(run_dir) if rc == 0 else {}
            row["status"] = "ok" if rc == 0 else "failed"
        except (OSError, ValueError, KeyError) as e:
            row["status"] = f"failed: no report ({type(e).__name__})"
        with lock:
            new = not table.exists()
            with open(table, "a", newline="") as f:
                w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
                if new:
                    w.writeheader()
                w.writerow(row)
            print(
                f"  {row['status']:6s} {rname} ({row['seconds']} s)"
                + (
                    f": {row.get('n_informative')} informative nodes"
                    if row["status"] == "ok"
                    else f", see {run_dir / 'log.txt'}"
                ),
                flush=True,
            )
        return row

    with ThreadPoolExecutor(max(1, parallel)) as pool:
        return list(pool.map(one, todo))


def latest_rows(table: Path) -> list[dict]:
    """One row per run: the last one written (reruns append)."""
    rows = {}
    for r in read_results(table):
        rows[r["run"]] = r
    return [r for r in rows.values() if r["status"] == "ok"]


def report(out_dir: str | Path, threshold: float = MAD_THRESHOLD) -> dict[str, Path]:
    """Figure 4 (informative nodes and MAD vs λ per latent size) and best-node MI vs λ."""
    from spectra_lightning.analysis.plots import subplots

    out = Path(out_dir)
    rows = latest_rows(out / "results.csv")
    if not rows:
        raise ValueError(f"{out}: no finished runs in results.csv")
    for r in rows:  # λ and the latent size as each run had them (its report), whichever way they were set
        r["kl_weight"] = float(r.get("kl_weight") or np.nan)
        r["latent_dim"] = int(r.get("latent_dim") or 0)
    sizes = sorted({r["latent_dim"] for r in rows})
    fig, axes = subplots(1, 2, figsize=(11, 4))
    for c, size in enumerate(sizes):
        sel = sorted((r for r in rows if r["latent_dim"] == size), key=lambda r: r["kl_weight"])
        lam = [r["kl_weight"] for r in sel]
        axes[0].plot(lam, [int(r["n_informative"]) for r in sel], "o-", c=f"C{c}", label=f"latent {size}")
        for r in sel:
            mad = np.array(json.loads(r["mad"]))
            x = np.full(len(mad), r["kl_weight"]) * (1 + 0.04 * (c - (len(sizes) - 1) / 2))
            axes[1].vlines(x, 1e-6, np.maximum(mad, 1e-6), colors=f"C{c}", alpha=0.35)
            axes[1].scatter(x, np.maximum(mad, 1e-6), s=8, c=f"C{c}", label=f"latent {size}" if r is sel[0] else None)
    axes[1].axhline(threshold, ls="--", c="k", lw=0.8)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("KL weight λ")
        ax.legend()
    axes[0].set_ylabel("informative nodes")
    axes[1].set(yscale="log", ylabel="MAD of μ per node", ylim=(1e-5, None))
    splits = sorted({r.get("split") or "val" for r in rows})
    fig.suptitle(f"Informative nodes against λ (cf. Sedaghat et al. 2021, Fig. 4); {'/'.join(splits)} split")
    fig.tight_layout()
    paths = {"figure4": out / "figure4.png", "figure4_table": out / "figure4.csv"}
    fig.savefig(paths["figure4"], dpi=100)
    table = io.StringIO()  # the figure's points, for reading and for checks
    w = csv.writer(table, lineterminator="\n")
    w.writerow(["latent_dim", "kl_weight", "n_informative", "split", "run"])
    for r in sorted(rows, key=lambda r: (r["latent_dim"], r["kl_weight"])):
        w.writerow([r["latent_dim"], f"{r['kl_weight']:g}", r["n_informative"], r.get("split") or "val", r["run"]])
    write_atomic(paths["figure4_table"], table.getvalue())
    fig, axes = subplots(1, len(sizes), figsize=(5.5 * len(sizes), 4), squeeze=False)
    for c, size in enumerate(sizes):
        sel = sorted((r for r in rows if r["latent_dim"] == size), key=lambda r: r["kl_weight"])
        for j, label in enumerate(LABELS):
            vals = [float(r[f"mi_{label}"]) if r.get(f"mi_{label}") not in (None, "") else np.nan for r in sel]
            axes[0, c].plot([r["kl_weight"] for r in sel], vals, "o-", label=label, c=f"C{j}")
        axes[0, c].set(
            xscale="log", xlabel="KL weight λ", ylabel="MI of the best informative node (nats)", title=f"latent {size}"
        )
        axes[0, c].legend(fontsize=8)
    fig.tight_layout()
    paths["mi"] = out / "sweep_mi.png"
    fig.savefig(paths["mi"], dpi=100)
    from spectra_lightning.analysis.loggers import log_sweep_figures

    log_sweep_figures(out, {k: v for k, v in paths.items() if v.suffix == ".png"})
    return paths


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning sweep",
        description="Run a W&B sweep YAML locally (no W&B server), then draw Figure 4.",
        epilog="Any other option is passed to every run's fit, e.g. --trainer.max_epochs=2 or "
        "--trainer.accelerator=cpu; a W&B server's agent runs the same YAML with `wandb agent`.",
    )
    p.add_argument("sweep", help="sweep YAML, e.g. experiments/sweeps/quickstart_lambda.yaml")
    p.add_argument("--dir", help="output directory (default runs/sweeps/<name>)")
    p.add_argument("--parallel", type=int, default=1, help="runs at once (default %(default)s)")
    p.add_argument("--count", type=int, help="at most this many runs (random: draws)")
    p.add_argument("--seed", type=int, default=0, help="random-search seed (default %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--no-report", action="store_true", help="skip the Figure-4 report at the end")
    a, extra = p.parse_known_args(argv)
    try:
        rows = run_sweep(a.sweep, a.dir, a.parallel, a.count, a.dry_run, a.seed, extra)
        if not a.dry_run and not a.no_report:
            spec = load_sweep(a.sweep)
            out = a.dir or Path("runs") / "sweeps" / (spec.get("name") or Path(a.sweep).stem)
            for name, path in report(out).items():
                print(f"{name}: {path}")
    except ValueError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return 2
    failed = [r for r in rows if r.get("status") != "ok"]
    return 1 if failed else 0


def report_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m spectra_lightning sweep-report", description="Figure 4 from a sweep directory's results.csv."
    )
    p.add_argument("dir", help="sweep directory (holds results.csv)")
    p.add_argument(
        "--threshold",
        type=float,
        default=MAD_THRESHOLD,
        help="MAD above which a node counts as informative (default %(default)s, the paper's)",
    )
    a = p.parse_args(argv)
    try:
        for name, path in report(a.dir, a.threshold).items():
            print(f"{name}: {path}")
    except ValueError as e:
        print(f"sweep-report: error: {e}", file=sys.stderr)
        return 2
    return 0
