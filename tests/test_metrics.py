"""Metrics against ground truth: analytic MI of Gaussians, invariances, degenerate cases."""

import json

import numpy as np
import pytest
from scipy.stats import median_abs_deviation

from spectra_lightning.metrics import (
    best_and_gap,
    best_pair,
    clean_label,
    informative_nodes,
    ksg,
    ksg_kernel,
    mad,
    mi_histogram,
    mi_ksg,
    mi_ksg_table,
    mi_pair_matrix,
)
from spectra_lightning.metrics.report import latent_report


def gaussian_pair(rho, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return x, rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(n)


@pytest.fixture(params=["compiled", "scipy"])
def ksg_path(request, monkeypatch):
    """Run a test on the numba kernel and on the scipy cKDTree fallback."""
    if request.param == "compiled" and not ksg_kernel.available:
        pytest.skip("numba is not installed (pip install -e '.[fast]')")
    monkeypatch.setattr(ksg_kernel, "available", request.param == "compiled")
    return request.param


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9, 0.99])
def test_ksg_matches_analytic_gaussian_mi(rho, ksg_path):
    truth = -0.5 * np.log(1 - rho**2)
    estimates = [ksg(*gaussian_pair(rho, 10_000, seed)) for seed in range(3)]
    assert np.mean(estimates) == pytest.approx(truth, abs=0.02)
    assert max(abs(e - truth) for e in estimates) < 0.04


def test_ksg_is_invariant_to_monotone_transforms(ksg_path):
    x, y = gaussian_pair(0.8, 3000, 1)
    base = ksg(x, y)
    assert ksg(np.exp(x), y**3) == pytest.approx(base, abs=1e-12)
    # decreasing maps mirror the normal scores, equal up to rounding at the k-th distance
    assert ksg(-x, np.arctan(y)) == pytest.approx(base, abs=1e-3)


@pytest.mark.skipif(not ksg_kernel.available, reason="numba is not installed (pip install -e '.[fast]')")
@pytest.mark.parametrize("k", [1, 3, 6])
def test_compiled_kernel_equals_scipy_path(k, monkeypatch):
    """Same k-th distances and marginal counts as cKDTree + searchsorted, on varied dependence:
    linear, non-monotone, ties (rounded values), a constant column, tiny n."""
    rng = np.random.default_rng(k)
    for n in (7, 900, 4000):
        x = rng.standard_normal(n)
        codes = np.column_stack(
            [
                x,
                0.99 * x + 0.14 * rng.standard_normal(n),
                np.sin(4 * x),
                np.round(rng.standard_normal(n)),
                np.zeros(n),
                rng.standard_normal(n),
            ]
        )
        labels = {"a": x + 0.3 * rng.standard_normal(n), "b": np.round(2 * rng.standard_normal(n))}
        k_eff = min(k, n - 2)
        compiled = mi_ksg_table(codes, labels, k=k_eff), mi_pair_matrix(codes, k=k_eff)
        monkeypatch.setattr(ksg_kernel, "available", False)
        fallback = mi_ksg_table(codes, labels, k=k_eff), mi_pair_matrix(codes, k=k_eff)
        monkeypatch.setattr(ksg_kernel, "available", True)
        for name in labels:
            np.testing.assert_allclose(compiled[0][name], fallback[0][name], atol=1e-12)
        np.testing.assert_allclose(compiled[1], fallback[1], atol=1e-12)


def test_independent_and_constant_give_zero(ksg_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(5000), rng.standard_normal(5000)
    assert ksg(x, y) < 0.01
    const = np.full(5000, 0.3)
    assert mad(const[:, None])[0] == 0.0
    assert ksg(const, y) < 0.01
    assert mi_histogram(const[:, None], y)["values"].max() == 0.0


def test_mad_matches_scipy():
    mu = np.random.default_rng(2).standard_t(3, size=(500, 4))
    np.testing.assert_allclose(mad(mu), median_abs_deviation(mu, axis=0))


def test_histogram_mi_grows_with_correlation_and_indicator_is_normalised():
    values = []
    for rho in (0.0, 0.5, 0.9):
        x, y = gaussian_pair(rho, 10_000, 0)
        h = mi_histogram(np.column_stack([x, np.zeros_like(x)]), y, bins=(20,))
        values.append(h["values"][0, 0])
        assert h["values"][0, 1] == 0.0
    assert values[0] < 0.03 < values[1] < values[2]
    assert values[2] == pytest.approx(-0.5 * np.log(1 - 0.81), abs=0.1)
    h = mi_histogram(np.column_stack(gaussian_pair(0.9, 2000, 1)), gaussian_pair(0.9, 2000, 1)[0])
    assert h["bins"] == [5, 10, 20, 40, 80, 160] and np.allclose(h["indicator"].max(axis=1), 1.0)


def test_duplicated_latent_shows_in_pair_matrix(ksg_path):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(3000), rng.standard_normal(3000)
    m = mi_pair_matrix(np.column_stack([a, a, b]))
    assert m[0, 1] > 3.0 and m[0, 2] < 0.02 and m[1, 2] < 0.02
    assert np.allclose(m, m.T, equal_nan=True) and np.isnan(np.diag(m)).all()


def test_labels_cleaned_with_counts():
    y = np.r_[np.random.default_rng(0).standard_normal(1000), np.nan, np.inf, -np.inf, 1e6]
    keep, counts = clean_label(y, sigma=5)
    assert counts == {"n": 1000, "n_nonfinite": 3, "n_clipped": 1}
    assert not keep[-4:].any()


def test_informative_criteria():
    rng = np.random.default_rng(0)
    n = 2000
    mu = np.column_stack([rng.normal(0, 1, n), rng.normal(0, 0.05, n), np.zeros(n)])
    logvar = np.column_stack([np.full(n, -4.0), np.zeros(n), np.zeros(n)])
    # node 1 varies (MAD ~0.034 > 0.02) but its posterior is the prior's width: KL ~ 0.001 nat
    assert informative_nodes(mu, criterion="mad")["informative"] == [0, 1]
    assert informative_nodes(mu, logvar)["informative"] == [0]  # auto -> both
    assert informative_nodes(mu)["criterion"] == "mad"
    with pytest.raises(ValueError, match="needs log-variances"):
        informative_nodes(mu, criterion="kl")


def test_the_best_node_is_an_informative_one_and_the_runner_up_any_node():
    """A collapsed node (1) that carries more of the label than the best informative node (3) is its runner-up:
    the best node is then not the label's only carrier (a negative gap)."""
    values = np.array([0.1, 1.5, 0.8, 1.2])
    r = best_and_gap(values, nodes=[0, 2, 3])
    assert (r["best_node"], r["runner_up"]) == (3, 1) and r["gap"] == pytest.approx((1.2 - 1.5) / 1.2)
    r = best_and_gap(np.array([0.1, 0.2, 0.8, 1.2]), nodes=[0, 2, 3])
    assert (r["best_node"], r["runner_up"]) == (3, 2) and r["gap"] == pytest.approx((1.2 - 0.8) / 1.2)


def test_phase_pair_carries_more_than_either_node():
    rng = np.random.default_rng(0)
    rv = rng.uniform(-1, 1, 3000)
    phase = 2.6 * rv  # ~300 degrees of a circle
    noise = rng.normal(0, 0.05, (3000, 2))
    codes = np.column_stack([np.cos(phase) + noise[:, 0], np.sin(phase) + noise[:, 1], rng.standard_normal(3000)])
    single = mi_ksg(codes, rv)
    joint = best_pair(codes, rv, nodes=[0, 1, 2])
    assert joint["best_pair"] == [0, 1] and joint["value"] > single[:2].max() + 0.5


def test_report_schema_and_nan_labels():
    rng = np.random.default_rng(0)
    n = 600
    teff = rng.uniform(4000, 6500, n)
    mu = np.column_stack([(teff - 5000) / 800 + 0.05 * rng.standard_normal(n), rng.standard_normal(n), np.zeros(n)])
    snr = rng.uniform(10, 100, n)
    snr[:7] = np.nan
    r = latent_report(mu, {"teff": teff, "snr": snr}, bootstrap=3)
    json.dumps(r)  # valid JSON, no NaN
    assert r["n_spectra"] == n
    assert r["mad"]["informative"] == [0, 1]  # by MAD: uniform Teff/800 (≈0.78) before N(0, 1) (≈0.67)
    assert r["mi"]["ksg"]["teff"]["best_node"] == 0 and r["mi"]["ksg"]["teff"]["n"] == n
    assert r["mi"]["ksg"]["snr"]["n"] == n - 7 and r["mi"]["ksg"]["snr"]["n_nonfinite"] == 7
    assert len(r["mi"]["ksg"]["teff"]["values"]) == 3 and len(r["mi"]["ksg"]["teff"]["se"]) == 3
    h = r["mi"]["histogram"]["teff"]
    assert np.shape(h["values"]) == (6, 3) and np.shape(h["indicator"]) == (6, 3)
    assert r["pair_mi"]["nodes"] == r["mad"]["informative"] and np.shape(r["pair_mi"]["matrix"]) == (2, 2)
    assert set(r["mi_pairs"]["ksg"]) == {"teff", "snr"}


def test_carrier_verdicts():
    from spectra_lightning.metrics.report import label_carrier

    def rep(best, runner, pair_value, teff_values):
        return {
            "mi": {
                "ksg": {
                    "rv": {"best_node": 0, "runner_up": 1, "best": best, "runner_up_value": runner},
                    "teff": {"values": teff_values},
                }
            },
            "mi_pairs": {"ksg": {"rv": {"best_pair": [0, 1], "value": pair_value}}},
        }

    assert label_carrier(rep(2.0, 0.5, 2.2, [0.0, 0.0]), "rv", ["teff"])["kind"] == "single node"
    assert label_carrier(rep(1.4, 1.1, 2.8, [0.02, 0.05]), "rv", ["teff"]) == {
        "kind": "phase pair",
        "nodes": [0, 1],
        "value": 2.8,
    }
    assert label_carrier(rep(1.4, 1.1, 2.8, [0.5, 0.05]), "rv", ["teff"])["kind"] == "diffuse"  # a node carries Teff
    assert label_carrier(rep(1.4, 1.1, 2.8, [0.5, 0.05]), "rv")["kind"] == "phase pair"  # no other label to check
    # every label against all the others (no label is special): Teff's verdicts come out the same way
    both = rep(1.4, 1.1, 2.8, [0.5, 0.05])
    both["mi"]["ksg"]["teff"].update(best_node=0, runner_up=1, best=0.5, runner_up_value=0.05)
    both["mi"]["ksg"]["rv"]["values"] = [1.4, 1.1]
    from spectra_lightning.metrics.report import label_carriers

    verdicts = label_carriers(both)
    assert verdicts["rv"]["kind"] == "diffuse" and verdicts["teff"] == {
        "kind": "single node",
        "nodes": [0],
        "value": 0.5,
    }
    assert label_carrier(rep(0.06, 0.02, 0.08, [0.0, 0.0]), "rv")["kind"] == "none"


def test_one_labels_entry_and_the_label_cleaning_each_stand_alone():
    """The report's parts, tested without the whole report: a node correlated with ρ = 0.9 carries the label's
    analytic MI, −½ ln(1 − ρ²) = 0.830 nat; the baseline that is the label plus less noise beats it."""
    from spectra_lightning.metrics.report import clean_labels, ksg_entry

    rng = np.random.default_rng(3)
    n, rho = 2000, 0.9
    y = rng.standard_normal(n)
    codes = rng.standard_normal((n, 3))
    codes[:, 1] = rho * y + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    better = 0.99 * y + np.sqrt(1 - 0.99**2) * rng.standard_normal(n)
    e = ksg_entry(codes, y, nodes=[0, 1, 2], k=3, seed=0, intervals=10, baselines={"b": better, "noise": codes[:, 0]})
    assert e["best_node"] == 1 and e["best"] == pytest.approx(-0.5 * np.log(1 - rho**2), abs=0.08)
    assert e["intervals"]["distinct"] and e["baseline"]["best"] == "b" and e["baseline"]["value"] > e["best"]
    y_bad = np.full(n, np.nan)
    y_bad[:5] = 1.0
    cleaned = clean_labels({"ok": y, "bad": y_bad}, sigma=None, min_n=8)
    assert "skipped" in cleaned["bad"][1] and "skipped" not in cleaned["ok"][1] and cleaned["ok"][0].sum() == n


def test_a_final_report_holds_the_separation_contract():
    """report.json["separation"] as docs/report-format.md gives it (other tools read it): per node (keys strings)
    its best and second label and whether clean; per label its node, MI, runner-up's MI, the conditional MI with an
    interval, distinct and clean; MIG and DCI with intervals."""
    from spectra_lightning.metrics.report import latent_report

    rng = np.random.default_rng(11)
    n = 400
    labels = {name: rng.standard_normal(n) for name in ("rv", "teff", "logg")}
    mu = np.column_stack([labels["rv"] + 0.1 * rng.standard_normal(n), labels["teff"] + labels["logg"]])
    report = latent_report(mu, labels, intervals=10)
    sep = report["separation"]
    for node, entry in sep["nodes"].items():
        assert isinstance(node, str) and {"best_label", "best_mi", "second_label", "second_mi", "clean"} <= set(entry)
    assert sep["nodes"]["0"]["clean"] and not sep["nodes"]["1"]["clean"]
    for entry in sep["labels"].values():
        assert {"node", "mi", "runner_up_mi", "cmi", "distinct", "clean"} <= set(entry)
        assert {"value", "lo", "hi"} <= set(entry["cmi"])
    assert sep["labels"]["rv"]["clean"] and not sep["labels"]["teff"]["clean"]
    assert {"value", "lo", "hi"} <= set(sep["mig"])
    assert {"disentanglement", "completeness", "informativeness"} == set(sep["dci"])
    assert "separation" not in latent_report(mu, labels, intervals=0)  # per-epoch reports stay cheap
