"""The paper's findings on the quickstart recipes, seed 0 (slow: ~11 min on 2 cores).

    .venv/bin/python -m pytest -m slow tests/test_quickstart_claims.py

Both recipes run at their own size (at 3,000 spectra and 10 epochs the L1 quickstart's Teff node
was not yet distinct: 1.83 nat vs 1.39 on its runner-up).
"""

import json
from pathlib import Path

import pytest

from spectra_lightning.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def fit_report(tmp_path_factory, *configs: str) -> dict:
    run = tmp_path_factory.mktemp("quickstart") / "run"
    args = ["fit"] + [a for c in configs for a in ("--config", str(EXPERIMENTS / c))]
    assert main(args + ["--trainer.logger=false", f"--trainer.default_root_dir={run}"]) == 0
    return json.loads((run / "report.json").read_text())


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    return fit_report(tmp_path_factory, "quickstart.yaml")


@pytest.fixture(scope="module")
def quickstart_l1(tmp_path_factory):
    return fit_report(tmp_path_factory, "quickstart.yaml", "quickstart_l1.yaml")


def distinct(report: dict, label: str) -> dict:
    """The label's KSG entry, asserted carried by one node at >= 2x its runner-up (and >= 0.5 nat)."""
    mi = report["mi"]["ksg"][label]
    assert mi["best"] >= 0.5 and mi["best"] >= 2 * mi["runner_up_value"], (label, mi)
    assert report["carriers"][label]["kind"] == "single node", report["carriers"][label]
    return mi


@pytest.mark.slow
def test_quickstart_learns_one_rv_node_and_one_teff_node(quickstart):
    rv, teff = distinct(quickstart, "rv"), distinct(quickstart, "teff")
    assert rv["best_node"] == 0  # the Doppler node
    assert teff["best_node"] != rv["best_node"]


@pytest.mark.slow
def test_paper_l1_loss_learns_teff_but_no_rv(quickstart_l1):
    distinct(quickstart_l1, "teff")
    rv = quickstart_l1["mi"]["ksg"]["rv"]["values"]
    # why: docs/results/README.md, "What makes RV learnable" (collapsed nodes are left out: KSG reads
    # spurious MI in codes that vary at the 1e-6 level)
    assert max(rv[i] for i in quickstart_l1["mad"]["informative"]) < 0.3
    assert (quickstart_l1["mi_pairs"]["ksg"]["rv"]["value"] or 0.0) < 0.3  # nor jointly by two nodes
