"""The paper's findings on the quickstart recipes, seed 0 (slow: ~11 min on 2 cores).

    .venv/bin/python -m pytest -m slow tests/test_quickstart_claims.py

Both recipes run at their own size: at 3,000 spectra and 10 epochs the quickstart's Teff node is
not yet distinct (measured: 1.83 nat vs 1.39 on its runner-up).
"""

import json
from pathlib import Path

import pytest

from spectra_lightning.cli import main
from spectra_lightning.metrics.report import carrier

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
def quickstart_rv(tmp_path_factory):
    return fit_report(tmp_path_factory, "quickstart.yaml", "quickstart_rv.yaml")


@pytest.mark.slow
def test_quickstart_learns_a_distinct_teff_node(quickstart):
    teff = quickstart["mi"]["ksg"]["teff"]
    assert teff["best"] >= 1.0 and teff["best"] >= 2 * teff["runner_up_value"], teff
    assert quickstart["carriers"]["teff"]["kind"] == "single node"


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue #7 open: the L1 recipe learns Teff but not RV "
                                       "(docs/results/README.md); strict, so it fails once RV is learned")
def test_quickstart_learns_an_rv_code(quickstart):
    rv = carrier(quickstart, "rv", other="teff")
    assert rv["kind"] in ("single node", "phase pair"), (rv, quickstart["mi"]["ksg"]["rv"])


@pytest.mark.slow
def test_rv_recipe_learns_a_single_rv_node_free_of_teff(quickstart_rv):
    rv = quickstart_rv["mi"]["ksg"]["rv"]
    assert rv["best_node"] == 0 and rv["best"] >= 1.0 and rv["best"] >= 2 * rv["runner_up_value"], rv
    assert quickstart_rv["mi"]["ksg"]["teff"]["values"][0] < 0.2 * rv["best"]  # and little Teff
    assert quickstart_rv["carriers"]["rv"]["kind"] == "single node"
