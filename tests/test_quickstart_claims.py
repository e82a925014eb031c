"""The paper's findings on the quickstart recipes, seed 0 (slow: ~16 min on 2 cores).

    .venv/bin/python -m pytest -m slow tests/test_quickstart_claims.py

Both recipes run at their own size (at 3,000 spectra and 10 epochs the L1 quickstart's Teff node
was not yet distinct: 1.83 nat vs 1.39 on its runner-up).
"""

import json
from pathlib import Path

import pytest
import yaml

from spectra_lightning.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def fit_report(tmp_path_factory, *configs: str) -> dict:
    run = tmp_path_factory.mktemp("quickstart") / "run"
    args = ["fit"] + [a for c in configs for a in ("--config", str(EXPERIMENTS / c))]
    assert main(args + ["--trainer.logger=false", f"--trainer.default_root_dir={run}"]) == 0
    report = json.loads((run / "report.json").read_text())
    return report | {"config": yaml.safe_load((run / "config.yaml").read_text())}


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    return fit_report(tmp_path_factory, "quickstart.yaml")


@pytest.fixture(scope="module")
def quickstart_doppler(tmp_path_factory):
    return fit_report(tmp_path_factory, "quickstart.yaml", "quickstart_doppler.yaml")


@pytest.fixture(scope="module")
def quickstart_l1(tmp_path_factory):
    return fit_report(tmp_path_factory, "quickstart.yaml", "quickstart_l1.yaml")


def learned(report: dict, label: str) -> dict:
    """The label's KSG entry on the test split, asserted learned: its best node's interval lies above the null
    level (the best of all nodes under permutation). Not asserted: that the node is distinct or clean — on fresh
    seeds the quickstart's RV and Teff nodes are distinct in 2 of 3 and clean in none (docs/results/README.md), so
    one seed's verdict is reported, not required."""
    assert report["split"] == "test"
    mi = report["mi"]["ksg"][label]
    iv = mi["intervals"]
    assert iv["best"]["interval"][0] > iv["null"]["p95"], (label, iv)
    return mi


@pytest.mark.slow
def test_quickstart_routes_rv_through_one_node_of_its_shift_operator_and_keeps_teff_on_another(quickstart):
    """The default: no node wired to the Doppler law, but a code-driven shift operator (nets.Warp) whose span
    contains it; RV and Teff are learned, on different nodes, as on every fresh seed (20–22)."""
    net = quickstart["config"]["model"]["net"]["init_args"]
    assert net["doppler_node"] is None and net["warp_knots"] > 0
    rv, teff = learned(quickstart, "rv"), learned(quickstart, "teff")
    assert teff["best_node"] != rv["best_node"]


@pytest.mark.slow
def test_doppler_recipe_uses_its_velocity_node(quickstart_doppler):
    """The node wired to the Doppler law (node 0) is the one that carries RV, and Teff lies on another. How much RV
    it carries depends on the training path: at seed 0 it was distinct with one CPU thread and 0.32 nat, not
    distinct, with two (2026-12-07), so only that it carries RV above the null is asserted."""
    rv, teff = learned(quickstart_doppler, "rv"), learned(quickstart_doppler, "teff")
    assert rv["best_node"] == 0  # the Doppler node
    assert teff["best_node"] != rv["best_node"]


@pytest.mark.slow
def test_paper_l1_loss_learns_teff_but_no_rv(quickstart_l1):
    """Teff is learned (its best node's interval above the runner-up's and the null level), not necessarily on
    one node alone: at this recipe's 1,500 steps the KL term may not have pruned a second Teff node yet (seed 0
    on 2026-12-04: four informative nodes, Teff on two). No node, nor pair, carries RV."""
    mi = quickstart_l1["mi"]["ksg"]["teff"]
    assert mi["intervals"]["distinct"] and mi["best"] >= 1.0, mi
    rv = quickstart_l1["mi"]["ksg"]["rv"]["values"]
    # why: docs/results/history.md, "What makes RV learnable" (collapsed nodes are left out: KSG reads
    # spurious MI in codes that vary at the 1e-6 level)
    assert max(rv[i] for i in quickstart_l1["mad"]["informative"]) < 0.3
    assert (quickstart_l1["mi_pairs"]["ksg"]["rv"]["value"] or 0.0) < 0.3  # nor jointly by two nodes
