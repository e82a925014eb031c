"""Replicate a recipe on seeds never used to choose it, and tabulate its final (test-split) reports.

    python docs/results/replicate.py --config experiments/quickstart.yaml --seeds 10 11 12 \\
        --runs runs/replicate/quickstart --out docs/results/quickstart_replication.csv [-- --data.init_args.synth.seed=7]
    python docs/results/replicate.py --runs runs/replicate/quickstart --out X.csv --table-only

Each seed is a real ``python -m spectra_lightning fit`` (its own process, W&B off) in ``RUNS/seed<k>`` (a
finished one, with its ``report.json``, is not run again). The CSV (written whole, replacing ``--out``) has one row
per run: the split the report is on, its size, the informative nodes and, per label, the best node's MI with its
95 % interval, the runner-up's, the null's 95th percentile, the distinct verdict, the best pair of nodes' MI and
the best label-free baseline with its interval (``metrics/intervals.py``, ``metrics/baselines.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from spectra_lightning.common.files import write_atomic, write_csv

LABELS = ("rv", "teff", "logg", "feh")


def row_of(run: Path, extra: str = "", labels: tuple[str, ...] = LABELS) -> dict:
    """One CSV row from a finished run directory."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    r = json.loads((run / "report.json").read_text())
    data = cfg["data"]["init_args"]
    row = {
        "run": run.name,
        "seed": cfg.get("seed_everything"),
        "data_seed": (data.get("synth") or {}).get("seed", ""),
        "overrides": extra,
        "split": r.get("split"),
        "n": r["n_spectra"],
        "informative": len(r["mad"]["informative"]),
        # the fit's wall time, alone on the machine it ran on (run_seed writes it; empty for runs made elsewhere)
        "wall_s": json.loads((run / "wall.json").read_text())["seconds"] if (run / "wall.json").exists() else "",
    }
    for label in labels:
        e = r["mi"]["ksg"].get(label)
        if not e or e.get("best_node") is None:
            continue
        iv, base = e.get("intervals") or {}, e.get("baseline") or {}
        pair = r.get("mi_pairs", {}).get("ksg", {}).get(label) or {}
        best, second = iv.get("best") or {}, iv.get("runner_up") or {}
        row |= {
            f"{label}_node": e["best_node"],
            f"{label}_mi": round(e["best"], 3),
            f"{label}_lo": round(best["interval"][0], 3) if best else "",
            f"{label}_hi": round(best["interval"][1], 3) if best else "",
            f"{label}_runner_node": e["runner_up"] if e["runner_up"] is not None else "",
            f"{label}_runner_mi": round(e["runner_up_value"], 3),
            f"{label}_runner_hi": round(second["interval"][1], 3) if second else "",
            f"{label}_null_p95": round(iv["null"]["p95"], 3) if iv.get("null") else "",
            f"{label}_distinct": int(bool(iv.get("distinct"))),
            f"{label}_pair_mi": round(pair["value"], 3) if pair.get("value") is not None else "",
            f"{label}_baseline": base.get("best") or "",
            f"{label}_baseline_mi": round(base["value"], 3) if base.get("value") is not None else "",
            f"{label}_baseline_lo": round(base["interval"][0], 3) if base.get("interval") else "",
            f"{label}_baseline_hi": round(base["interval"][1], 3) if base.get("interval") else "",
        }
    return row | separation_columns(r, labels)


def separation_columns(report: dict, labels: tuple[str, ...]) -> dict:
    """The report's separation block as CSV columns (report version 3; empty for older reports): per label whether
    its node is clean and its MI given the other labels that node carries; MIG and DCI with their intervals."""
    sep = report.get("separation")
    if not sep:
        return {}
    out: dict = {"sep_n": sep["n"]}
    for label in labels:
        e = sep["labels"].get(label)
        if not e:
            continue
        cmi = e["cmi"]
        out |= {
            f"{label}_sep_node": e["node"],
            f"{label}_clean": int(bool(e["clean"])),
            f"{label}_node_clean": int(bool(sep["nodes"][str(e["node"])]["clean"])),
            f"{label}_node_also": also_carried(sep["nodes"][str(e["node"])]),
            f"{label}_cmi": round(cmi["value"], 3),
            f"{label}_cmi_lo": round(cmi["lo"], 3),
            f"{label}_cmi_hi": round(cmi["hi"], 3),
            f"{label}_cmi_given": "+".join(cmi["given"]),
        }
    for key in ("mig",):
        out |= {
            key: round(sep[key]["value"], 3),
            f"{key}_lo": round(sep[key]["lo"], 3),
            f"{key}_hi": round(sep[key]["hi"], 3),
        }
    for key in ("disentanglement", "completeness", "informativeness"):
        d = sep["dci"][key]
        out |= {
            f"dci_{key}": round(d["value"], 3),
            f"dci_{key}_lo": round(d["lo"], 3),
            f"dci_{key}_hi": round(d["hi"], 3),
        }
    return out


def also_carried(node: dict) -> str:
    """What a node carries besides its best label once that label is known: ``"logg 0.10, teff 0.07"`` — each label
    whose conditional MI's interval stays above its null (nats), largest first; "" for a clean node."""
    given = node.get("given_best") or {}
    kept = sorted(((c["value"], name) for name, c in given.items() if c["lo"] > c["null_p95"]), reverse=True)
    return ", ".join(f"{name} {value:.2f}" for value, name in kept)


def run_seed(config: list[str], seed: int, run: Path, extra: list[str]) -> int:
    cmd = [sys.executable, "-m", "spectra_lightning", "fit", *[a for c in config for a in ("--config", c)]]
    cmd += [f"--seed_everything={seed}", f"--trainer.default_root_dir={run}", *extra]
    run.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WANDB_MODE": "disabled"}
    env.pop("SPECTRA_LIGHTNING_RUN_DIR", None)
    t = time.perf_counter()
    with open(run / "log.txt", "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - t
    write_atomic(run / "wall.json", json.dumps({"seconds": round(seconds, 1), "exit": rc}))
    print(f"seed {seed}: exit {rc} in {seconds:.0f} s ({run})", flush=True)
    return rc


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", action="append", default=[], help="recipe YAML(s), in order (overlays after)")
    p.add_argument("--seeds", type=int, nargs="*", default=[])
    p.add_argument("--runs", required=True, help="folder of the runs (one seed<k> each)")
    p.add_argument("--out", required=True, help="CSV to write (replaced)")
    p.add_argument("--table-only", action="store_true", help="tabulate the finished runs in --runs, run nothing")
    p.add_argument("--labels", nargs="+", default=list(LABELS), help="labels to tabulate (default: %(default)s)")
    a = p.parse_args(argv)
    runs = Path(a.runs)
    if not a.table_only:
        for seed in a.seeds:
            run = runs / f"seed{seed}"
            if not (run / "report.json").exists():
                run_seed(a.config, seed, run, extra)
    finished = sorted((r for r in runs.glob("seed*") if (r / "report.json").exists()), key=lambda r: int(r.name[4:]))
    rows = [row_of(r, " ".join(extra), tuple(a.labels)) for r in finished]
    write_csv(Path(a.out), rows)
    print(f"{len(rows)} runs -> {a.out}")


if __name__ == "__main__":
    main()
