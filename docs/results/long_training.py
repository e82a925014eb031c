"""#16, hypothesis (d): does much longer training let a physics-agnostic L1 network discover RV?

    python docs/results/long_training.py                       # on a GPU: < 8 min on one H200
    python docs/results/long_training.py --n 600 --steps 60 --every 20 --val-fraction 0.2   # CPU smoke run

Trains the quickstart's L1 recipe (`experiments/quickstart.yaml` + `quickstart_l1.yaml`: no Doppler node, no
physics prior) on ``--n`` synthetic quickstart spectra (RV uniform on ±30 km/s) for ``--steps`` optimizer steps
(default 37,500: 25× the CPU recipe's 1,500), and every ``--every`` steps encodes the validation spectra and
records, per label (RV, Teff), the KSG MI of the best informative node, its runner-up and the best node
overall. Writes ``long_training.csv`` and ``long_training.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LABELS = ("rv", "teff")


class MITrajectory(L.Callback):
    """Every ``every`` steps: μ of the validation spectra -> MI of each node with RV and Teff."""

    def __init__(self, every: int = 2000, out: str = "long_training.csv"):
        self.every, self.out, self.rows = every, out, []
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every == 0 and trainer.is_global_zero:
            self.measure(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            if not self.rows or self.rows[-1]["step"] != trainer.global_step:
                self.measure(trainer, pl_module)
            with open(self.out, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(self.rows[0]))
                writer.writeheader()
                writer.writerows(self.rows)

    @torch.no_grad()
    def measure(self, trainer, pl_module):
        from spectra_lightning.metrics.latent import informative_nodes
        from spectra_lightning.metrics.mi import mi_ksg_table

        was_training = pl_module.training
        pl_module.eval()
        mus, logvars, labels = [], [], []
        for batch in trainer.datamodule.val_dataloader():
            batch = pl_module.on_after_batch_transfer(pl_module.transfer_batch_to_device(batch, pl_module.device, 0), 0)
            mu, logvar = pl_module.net.encode(batch["flux"])
            mus.append(mu.float().cpu().numpy())
            logvars.append(logvar.float().cpu().numpy())
            labels.append(batch["labels"].float().cpu().numpy())
        pl_module.train(was_training)
        mu, logvar, y = np.concatenate(mus), np.concatenate(logvars), np.concatenate(labels)
        names = trainer.datamodule.label_names
        nodes = informative_nodes(mu, logvar)["informative"]
        row = {
            "step": trainer.global_step,
            "seconds": round(time.perf_counter() - self.t0, 1),
            "n_informative": len(nodes),
        }
        for name in LABELS:
            values = np.asarray(mi_ksg_table(mu, {name: y[:, names.index(name)].astype(np.float64)})[name], float)
            ranked = sorted(nodes, key=lambda i: -values[i])
            row[f"{name}_best"] = round(float(values[ranked[0]]), 4) if ranked else 0.0
            row[f"{name}_runner_up"] = round(float(values[ranked[1]]), 4) if len(ranked) > 1 else 0.0
            row[f"{name}_any_node"] = round(float(np.nanmax(values)), 4)
        self.rows.append(row)
        print(row, flush=True)


def figure(rows: list[dict], path: Path) -> None:
    from spectra_lightning.analysis.plots import subplots

    steps = [r["step"] for r in rows]
    fig, ax = subplots(figsize=(7, 3.6))
    for name, colour in zip(LABELS, ("C0", "C3")):
        ax.plot(steps, [r[f"{name}_best"] for r in rows], c=colour, label=f"{name}: best informative node")
        ax.plot(steps, [r[f"{name}_runner_up"] for r in rows], c=colour, ls="--", lw=0.8, label=f"{name}: runner-up")
        ax.plot(steps, [r[f"{name}_any_node"] for r in rows], c=colour, ls=":", lw=0.8, label=f"{name}: any node")
    ax.set(xlabel="optimizer step", ylabel="KSG MI (nats)", title="L1, no Doppler node: MI during long training")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="synthetic spectra (default %(default)s)")
    p.add_argument("--steps", type=int, default=37500, help="optimizer steps (default %(default)s)")
    p.add_argument("--every", type=int, default=2000, help="steps between MI measurements (default %(default)s)")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers")
    p.add_argument("--out", required=True, help="folder for the CSV and the figure (docs/results for the record)")
    a = p.parse_args()
    from spectra_lightning.cli import commands as cli

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    overlay = {
        "seed_everything": a.seed,
        "trainer": {
            "max_steps": a.steps,
            "max_epochs": -1,
            "logger": False,
            "precision": "bf16-mixed" if torch.cuda.is_available() else "32-true",
            "callbacks": [
                {
                    "class_path": "long_training.MITrajectory",
                    "init_args": {"every": a.every, "out": str(out / "long_training.csv")},
                }
            ],
        },
        "data": {
            "init_args": {
                "synth": {"n": a.n, "seed": a.seed, "grid": "quickstart", "rv_dist": "uniform", "rv_max": 30.0},
                "val_fraction": a.val_fraction,
                "num_workers": a.workers,
            }
        },
    }
    cfg = out / "long_training.yaml"
    cfg.write_text(yaml.safe_dump(overlay))
    sys.path.insert(0, str(HERE))  # the callback's class_path
    args = [
        "fit",
        "--config",
        str(REPO / "experiments/quickstart.yaml"),
        "--config",
        str(REPO / "experiments/quickstart_l1.yaml"),
    ]
    code = cli([*args, "--config", str(cfg), f"--trainer.default_root_dir={out / 'long_training_run'}"])
    rows = list(csv.DictReader(open(out / "long_training.csv")))
    rows = [{k: float(v) for k, v in r.items()} for r in rows]
    figure(rows, out / "long_training.png")
    print(f"wrote {out / 'long_training.csv'} and {out / 'long_training.png'}")
    sys.exit(code)


if __name__ == "__main__":
    main()
