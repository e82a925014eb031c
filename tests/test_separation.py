"""Separation metrics against ground truth: Gaussians with a known conditional MI, a node that is a + b against one
that is a, and codes that are the labels or a rotation of them."""

import numpy as np
import pytest

from spectra_lightning.metrics.separation import (
    cmi_with_interval,
    conditional_mi,
    dci,
    mig,
    separation,
)


def gaussians(n: int, a: float, seed: int = 0):
    """Z ~ N(0, 1), X = Z + e1, Y = Z + a·e1 + e2: the partial correlation of X and Y given Z is a/√(a² + 1), so
    I(X; Y | Z) = −½ ln(1 − a²/(a² + 1)) = ½ ln(1 + a²)."""
    rng = np.random.default_rng(seed)
    z, e1, e2 = rng.standard_normal((3, n))
    return z + e1, z + a * e1 + e2, z


@pytest.mark.parametrize("a", [0.0, 1.0, 2.0])
def test_conditional_mi_of_gaussians_is_the_analytic_one(a):
    x, y, z = gaussians(3000, a)
    assert conditional_mi(x, y, z) == pytest.approx(0.5 * np.log(1 + a**2), abs=0.04)
    # without z, the plain MI: corr(X, Y) = (1 + a) / √(2 (2 + a²)), what z gives both counted in
    rho2 = (1 + a) ** 2 / (2 * (2 + a**2))
    assert conditional_mi(x, y, None) == pytest.approx(-0.5 * np.log(1 - rho2), abs=0.04)


def test_the_interval_reaches_the_null_only_without_conditional_dependence():
    x, y, z = gaussians(600, 0.0)
    independent = cmi_with_interval(x, y, z, reps=20)
    assert independent["reaches_null"] and independent["lo"] <= independent["null_p95"]
    x, y, z = gaussians(600, 1.0)
    dependent = cmi_with_interval(x, y, z, reps=20)
    assert not dependent["reaches_null"] and dependent["lo"] > dependent["null_p95"]
    assert dependent["lo"] <= dependent["value"] <= dependent["hi"]


def test_a_node_of_one_label_is_clean_and_a_node_of_two_is_not():
    rng = np.random.default_rng(3)
    n = 600
    a, b, c = rng.standard_normal((3, n))
    codes = np.column_stack([a + 0.1 * rng.standard_normal(n), a + b, rng.standard_normal(n)])
    out = separation(codes, {"a": a, "b": b, "c": c}, nodes=[0, 1], reps=20)
    assert out["nodes"]["0"]["best_label"] == "a" and out["nodes"]["0"]["clean"]
    mixed = out["nodes"]["1"]
    other = "b" if mixed["best_label"] == "a" else "a"
    assert not mixed["clean"] and mixed["given_best"][other]["lo"] > mixed["given_best"][other]["null_p95"]
    assert out["labels"]["a"]["node"] == 0 and out["labels"]["a"]["clean"] and out["labels"]["a"]["distinct"]
    assert out["labels"]["b"]["node"] == 1 and not out["labels"]["b"]["clean"]
    assert out["labels"]["c"]["mi"] < out["labels"]["c"]["null_max_p95"] and not out["labels"]["c"]["distinct"]
    assert not out["labels"]["c"]["clean"]  # no carrier is not a clean one
    # the best node's MI with a label given the other labels it carries: node 0 carries a alone (given nothing);
    # node 1 carries a and b, and keeps b's information given a
    assert out["labels"]["a"]["cmi"]["given"] == [] and out["labels"]["a"]["cmi"]["lo"] > 1.0
    assert out["labels"]["b"]["cmi"]["given"] == ["a"] and out["labels"]["b"]["cmi"]["lo"] > 0.3


def test_mig_and_dci_tell_the_labels_from_a_rotation_of_them():
    rng = np.random.default_rng(7)
    n = 2000
    a, b = rng.standard_normal((2, n))
    labels = {"a": a, "b": b}
    own = np.column_stack([a, b, 0.01 * rng.standard_normal(n)])
    rotated = np.column_stack([a + b, a - b, 0.01 * rng.standard_normal(n)])
    assert mig(own, labels)["value"] > 0.8 and mig(rotated, labels)["value"] < 0.1
    half, rest = np.arange(n // 2), np.arange(n // 2, n)
    clean, mixed = dci(own, labels, half, rest), dci(rotated, labels, half, rest)
    assert clean["disentanglement"] > 0.95 and clean["completeness"] > 0.95
    # rotated: each node reads both labels (disentanglement 0); each label lies evenly on two of the three nodes:
    # completeness 1 − H₃(½, ½, 0) = 1 − ln 2 / ln 3
    assert mixed["disentanglement"] < 0.05
    assert mixed["completeness"] == pytest.approx(1 - np.log(2) / np.log(3), abs=0.02)
    assert clean["informativeness"] > 0.99 and mixed["informativeness"] > 0.99  # both read out linearly
