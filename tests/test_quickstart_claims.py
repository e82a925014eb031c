"""The paper's finding on the quickstart recipe, one seed (slow: ~4 min on 2 cores).

    .venv/bin/python -m pytest -m slow tests/test_quickstart_claims.py

Runs the quickstart at its own size: at 3,000 spectra and 10 epochs the Teff node is not yet
distinct (measured: 1.83 nat vs 1.39 on its runner-up).
"""

import json
from pathlib import Path

import pytest

from spectra_lightning.cli import main
from spectra_lightning.metrics.report import carrier

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = tmp_path_factory.mktemp("quickstart") / "run"
    assert main(["fit", "--config", str(REPO / "experiments" / "quickstart.yaml"), "--trainer.logger=false",
                 f"--trainer.default_root_dir={run}"]) == 0
    return json.loads((run / "report.json").read_text())


@pytest.mark.slow
def test_quickstart_learns_a_distinct_teff_node(report):
    teff = report["mi"]["ksg"]["teff"]
    assert teff["best"] >= 1.0 and teff["best"] >= 2 * teff["runner_up_value"], teff
    assert report["carriers"]["teff"]["kind"] == "single node"


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue #7 open: the L1 recipe learns Teff but not RV "
                                       "(docs/results/README.md); strict, so it fails once RV is learned")
def test_quickstart_learns_an_rv_code(report):
    rv = carrier(report, "rv", other="teff")
    assert rv["kind"] in ("single node", "phase pair"), (rv, report["mi"]["ksg"]["rv"])
