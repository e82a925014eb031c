"""The torchmetrics wrapper (incl. 2-rank DDP), the callback inside a real fit, encode and analyze."""

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spectra_lightning.cli import main
from spectra_lightning.metrics.report import latent_report
from spectra_lightning.metrics.torchmetric import LatentCodes

from helpers import linear_fits, tiny_config

N, D = 300, 4


def fake_codes(seed=0):
    rng = np.random.default_rng(seed)
    teff = rng.uniform(4000, 6500, N)
    mu = np.column_stack(
        [
            (teff - 5000) / 700 + 0.05 * rng.standard_normal(N),
            rng.standard_normal(N),
            np.zeros(N),
            1e-6 * rng.standard_normal(N),
        ]
    )
    return mu.astype(np.float32), teff.astype(np.float32)


def test_metric_deduplicates_and_matches_the_pure_function():
    mu, teff = fake_codes()
    m = LatentCodes(["teff"], estimators=("ksg",), pair_labels=False)
    idx = np.arange(N)
    for part in (idx[:200], idx[150:]):  # rows 150..199 arrive twice, as DistributedSampler padding does
        m.update(torch.tensor(mu[part]), torch.tensor(part), torch.tensor(teff[part, None]))
    got = m.compute()
    want = latent_report(mu.astype(np.float64), {"teff": teff}, estimators=("ksg",), pair_labels=False)
    assert got["n_spectra"] == N
    assert got["mad"] == want["mad"] and got["mi"] == want["mi"]
    assert got["mi"]["ksg"]["teff"]["best_node"] == 0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    mu, teff = fake_codes()
    # DistributedSampler-style: interleaved rows, padded to equal length by repeating the first ones
    rows = np.arange(N + (-N % world))[rank::world] % N
    m = LatentCodes(["teff"], estimators=("ksg",), pair_labels=False)
    for chunk in np.array_split(rows, 3):
        m.update(torch.tensor(mu[chunk]), torch.tensor(chunk), torch.tensor(teff[chunk, None]))
    report = m.compute()
    if rank == 0:
        out.put(json.dumps(report))
    dist.destroy_process_group()


def test_two_ranks_give_the_same_numbers_as_one():
    mu, teff = fake_codes()
    one = latent_report(mu.astype(np.float64), {"teff": teff}, estimators=("ksg",), pair_labels=False)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, 2, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    two = json.loads(q.get(timeout=120))
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert two["n_spectra"] == N and two["mad"] == one["mad"] and two["mi"] == one["mi"]


def fit_with_callback(tmp_path, store, epochs=2, *args):
    metrics = {
        "class_path": "spectra_lightning.callbacks.LatentMetrics",
        "init_args": {"figures_every_n_epochs": 1, "estimators": ["ksg", "histogram"]},
    }
    path = tiny_config(
        tmp_path,
        store,
        data={"val_fraction": 0.25, "test_fraction": 0.25},
        max_epochs=epochs,
        logger=False,
        callbacks=[metrics],
    )
    assert main(["fit", "--config", str(path), *args]) == 0
    return tmp_path / "run"


def test_a_fit_limited_by_steps_draws_its_figures_and_says_its_steps(tmp_path, tiny_store, capsys):
    """With --trainer.max_steps and no max_epochs every epoch was taken for the last (no periodic figures) and the
    epoch line read "epoch 3/-1"; report.json's fit.val_loss was always null (read after the test loop)."""
    import re

    run = fit_with_callback(tmp_path, tiny_store, None, "--trainer.max_steps=12", "--trainer.enable_progress_bar=true")
    out = capsys.readouterr().out
    assert re.search(r"^epoch 1  step 4/12  train/loss", out, re.M) and re.search(r"^epoch 3  step 12/12 ", out, re.M)
    assert {p.name for p in (run / "figures").iterdir()} == {"epoch_000", "epoch_001", "final"}
    fit = json.loads((run / "report.json").read_text())["fit"]
    assert fit["global_step"] == 12 and fit["val_loss"] > 0 and fit["val_objective"] > 0


def test_callback_writes_report_and_figures(tmp_path, tiny_store, capsys):
    run = fit_with_callback(tmp_path, tiny_store)
    report = json.loads((run / "report.json").read_text())
    split = json.loads((run / "split.json").read_text())["split_ids"]
    # the final report is the test split's, stated; checkpoints and the per-epoch scalars saw validation
    assert report["split"] == "test" and report["n_spectra"] == len(split["test"]) > 20
    assert report["latent_dim"] == 4
    assert set(report["mi"]["ksg"]) == {"rv", "teff", "logg", "feh", "vsini", "snr"}
    teff = report["mi"]["ksg"]["teff"]
    # intervals, the null and the verdict; label-free baselines fit on training spectra beside the best node
    assert teff["intervals"]["best"]["node"] == teff["best_node"] and teff["intervals"]["null"]["n"] == teff["n"]
    lo, hi = teff["intervals"]["best"]["interval"]
    assert lo <= teff["best"] <= hi and isinstance(teff["intervals"]["distinct"], bool)
    assert report["baselines"]["names"] == ["pc1", "pc2", "pc3", "colour", "ccf_velocity"]
    assert teff["baseline"]["best"] in report["baselines"]["names"] and teff["baseline"]["value"] > 0.3
    assert "mi_pairs" in report and "carriers" in report
    final = run / "figures" / "final"
    assert (final / "mad.png").exists() and (final / "reconstructions.png").exists()
    assert (run / "figures" / "epoch_000" / "mad.png").exists()
    # one traversal per informative node (up to six), none for the rest
    drawn = sorted(int(p.stem.removeprefix("traversal_node")) for p in final.glob("traversal_node*.png"))
    assert drawn == sorted(report["mad"]["informative"][:6])
    out = capsys.readouterr().out
    assert "informative" in out and "report:" in out


def test_encode_then_analyze(tmp_path, tiny_store, capsys):
    run = fit_with_callback(tmp_path, tiny_store, epochs=1)
    ckpt = next((run / "checkpoints").glob("*.ckpt"))
    codes = tmp_path / "codes.zarr"
    assert main(["encode", "--ckpt", str(ckpt), "--store", str(tiny_store), "--output", str(codes), "--quiet"]) == 0
    import zarr

    g = zarr.open_group(str(codes), mode="r")
    assert g["mu"].shape == (160, 4) and g["logvar"].shape == (160, 4)
    # codes equal the model's own μ
    from spectra_lightning.model.checkpoints import load_model
    from spectra_lightning.store import SpectraStore

    model = load_model(ckpt, torch.device("cpu"))
    flux = np.nan_to_num(SpectraStore.open(tiny_store).read(np.arange(5)))
    with torch.no_grad():
        mu, _ = model.net.encode(torch.tensor(flux))
    np.testing.assert_allclose(g["mu"][:5], mu.numpy(), rtol=1e-5, atol=1e-6)

    # labels from the store named in the codes, and from a CSV with shuffled ids
    assert main(["analyze", "--codes", str(codes), "--output", str(tmp_path / "a1"), "--no-figures"]) == 0
    # --label-columns picks among the store's labels too (it used to be ignored without --labels)
    picked = ["analyze", "--codes", str(codes), "--output", str(tmp_path / "a2"), "--no-figures"]
    assert main([*picked, "--label-columns", "teff,rv"]) == 0
    assert set(json.loads((tmp_path / "a2/report.json").read_text())["mi"]["ksg"]) == {"teff", "rv"}
    capsys.readouterr()
    assert main([*picked, "--label-columns", "teff,nope,gone"]) == 2
    assert "label columns not usable: nope (no such column), gone (no such column)" in capsys.readouterr().err
    # the run's test split only, with baselines fit on its training split, and saying so
    args = ["analyze", "--codes", str(codes), "--split-file", str(run / "split.json"), "--no-figures"]
    assert main([*args, "--output", str(tmp_path / "a0")]) == 0
    r0 = json.loads((tmp_path / "a0/report.json").read_text())
    split = json.loads((run / "split.json").read_text())["split_ids"]
    assert r0["split"] == "test" and r0["n_spectra"] == len(split["test"])
    assert r0["mi"]["ksg"]["teff"]["baseline"]["best"] in r0["baselines"]["names"]
    assert f"latent space of {len(split['test'])} test spectra" in capsys.readouterr().out
    meta = SpectraStore.open(tiny_store).meta
    order = np.random.default_rng(0).permutation(160)
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "teff", "rv", "note"])
        for i in order:
            w.writerow([meta["id"][i], meta["teff"][i], meta["rv"][i], "x"])
    assert (
        main(
            [
                "analyze",
                "--codes",
                str(codes),
                "--labels",
                str(tmp_path / "labels.csv"),
                "--output",
                str(tmp_path / "a2"),
            ]
        )
        == 0
    )
    r1 = json.loads((tmp_path / "a1/report.json").read_text())
    r2 = json.loads((tmp_path / "a2/report.json").read_text())
    # the store's labels in a training report's order, whatever order the file system lists the columns in
    from spectra_lightning.physics.labels import LABELS

    names = list(r1["mi"]["ksg"])
    assert names == [n for n in LABELS if n in names] + sorted(set(names) - set(LABELS)) and names[0] == "rv"
    assert set(r2["mi"]["ksg"]) == {"teff", "rv"}  # the text column is not a label
    assert r2["mi"]["ksg"]["teff"]["values"] == r1["mi"]["ksg"]["teff"]["values"]
    assert (tmp_path / "a2/figures/mad.png").exists()
    # .npy codes with row-order labels: only when asked for
    np.save(tmp_path / "codes.npy", g["mu"][:])
    with open(tmp_path / "rows.csv", "w") as f:
        f.write("teff\n" + "\n".join(str(v) for v in meta["teff"]))
    args = ["analyze", "--codes", str(tmp_path / "codes.npy"), "--labels", str(tmp_path / "rows.csv")]
    assert main([*args, "--output", str(tmp_path / "a3"), "--no-figures"]) == 2
    assert "needs one of the columns id, spectrum_id, dp_id, arcfile, file, miles_id, object to join on" in (
        capsys.readouterr().err
    )
    assert main([*args, "--labels-by-row", "--output", str(tmp_path / "a3"), "--no-figures"]) == 0
    r3 = json.loads((tmp_path / "a3/report.json").read_text())
    assert r3["mi"]["ksg"]["teff"]["values"] == r1["mi"]["ksg"]["teff"]["values"]
    capsys.readouterr()


def test_analyze_and_encode_errors(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.zeros((10, 3)))
    (tmp_path / "l.csv").write_text("id,teff\na,1\nb,2\n")
    assert (
        main(
            [
                "analyze",
                "--codes",
                str(tmp_path / "c.npy"),
                "--labels",
                str(tmp_path / "l.csv"),
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "the codes carry no ids" in capsys.readouterr().err
    assert (
        main(
            [
                "analyze",
                "--codes",
                str(tmp_path / "c.npy"),
                "--labels",
                str(tmp_path / "l.csv"),
                "--labels-by-row",
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "2 rows for 10 codes" in capsys.readouterr().err
    (tmp_path / "c.csv").write_text("id,z0\nq,1\nr,2\n")
    assert (
        main(
            [
                "analyze",
                "--codes",
                str(tmp_path / "c.csv"),
                "--labels",
                str(tmp_path / "l.csv"),
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "none of its rows match the codes' spectra (by id)" in capsys.readouterr().err
    (tmp_path / "c2.csv").write_text("id,z0\na,1\nb,2\n")
    assert (
        main(
            [
                "analyze",
                "--codes",
                str(tmp_path / "c2.csv"),
                "--labels",
                str(tmp_path / "l.csv"),
                "--label-columns",
                "logg",
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "label columns not usable: logg (no such column); numeric columns: teff" in capsys.readouterr().err
    assert main(["encode", "--ckpt", str(tmp_path / "missing.ckpt"), "--store", "x", "--output", "y"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_figures_leave_pyplot_alone():
    """A notebook's backend and figure list are untouched by drawing (Figures are built without pyplot)."""
    code = """
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
import numpy as np
from spectra_lightning.analysis import plots
from spectra_lightning.metrics.report import latent_report
rng = np.random.default_rng(0)
mu = rng.standard_normal((200, 3))
report = latent_report(mu, {"teff": mu[:, 0] + 0.1 * rng.standard_normal(200)}, estimators=("ksg",))
figs = plots.report_figures(report, mu, {"teff": mu[:, 0]})
print(matplotlib.get_backend(), len(plt.get_fignums()), len(figs))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["svg", "0"] and int(out[2]) >= 3


def test_envelope_draws_the_same_line_with_fewer_points():
    from spectra_lightning.analysis.plots import envelope

    x = np.arange(327_680.0)
    y = np.sin(x / 40.0) + 1e-3 * np.random.default_rng(0).normal(size=x.size)
    y[5000:5300] = np.nan  # a masked segment
    y[30_000:31_000] = np.nan  # one wider than a bin
    y[200_001] = 9.0  # one narrow feature
    ex, ey = envelope(x, y)
    assert len(ex) <= 2500 and np.all(np.diff(ex) > 0)
    assert np.nanmax(ey) == 9.0 and np.nanmin(ey) == np.nanmin(y)
    assert np.isnan(ey[(ex >= 5000) & (ex < 5300)]).any()  # the gap still breaks the line
    np.testing.assert_array_equal(ey, y[ex.astype(int)])  # points of the line, not new values
    small_x, small_y = np.arange(100.0), np.cos(np.arange(100.0))
    ex, ey = envelope(small_x, small_y)  # few enough points: every one kept, as given
    np.testing.assert_array_equal(ex, small_x)
    np.testing.assert_array_equal(ey, small_y)


def test_the_cost_line_splits_scalars_from_figures_and_divides_by_training_time():
    from spectra_lightning.callbacks import LatentMetrics

    cb = LatentMetrics()
    cb.seconds, cb.figure_seconds = [1.0, 1.0, 3.0], [2.0]  # the third evaluation drew a figure set
    line = cb.cost_line(fit_seconds=25.0)
    assert line == "latent metrics: 1.00 s per evaluation (3) + 2.0 s per figure set (1) = 25.0 % on top of training"


def test_baseline_features_of_a_row_seen_with_the_same_flux_come_from_the_cache():
    from spectra_lightning.callbacks import LatentMetrics
    from spectra_lightning.metrics.baselines import LabelFreeBaselines

    rng = np.random.default_rng(0)
    wave = np.linspace(5000.0, 5100.0, 256)
    flux = 1 + 0.1 * rng.standard_normal((12, 256))
    cb = LatentMetrics()
    cb.baselines = LabelFreeBaselines(wave).fit(flux, np.ones_like(flux, bool))
    calls = []
    compute = cb.baselines.features
    cb.baselines.features = lambda f, m: calls.append(len(f)) or compute(f, m)  # type: ignore[method-assign]

    def batch(rows, values):
        x = torch.as_tensor(values, dtype=torch.float32)
        return {"flux": x, "mask": torch.ones_like(x, dtype=torch.bool), "index": torch.as_tensor(rows)}

    first = cb._baseline_features(batch([0, 1, 2, 3], flux[:4]))
    want = compute(flux[:4].astype(np.float32), np.ones((4, 256), bool)).astype(np.float32)
    np.testing.assert_array_equal(first, want)
    again = cb._baseline_features(batch([0, 1, 2, 3], flux[:4]))  # the next epoch's same batch: no CCF
    np.testing.assert_array_equal(again, first)
    assert calls == [4]
    moved = cb._baseline_features(batch([0, 1, 2, 3], flux[4:8]))  # same rows, other flux: computed anew
    assert calls == [4, 4]
    np.testing.assert_array_equal(
        moved, compute(flux[4:8].astype(np.float32), np.ones((4, 256), bool)).astype(np.float32)
    )


def test_analyze_a_run_reads_its_test_split_and_joins_a_label_table_on_file(tmp_path, tiny_store, capsys):
    """``analyze --run RUN``: its codes (encoded once), its test split, RUN/analysis; a label table joined on its
    ``file`` column (paths, as ../shared's labels.csv has them) as ``ingest --labels`` joins it, its physical
    columns analysed by default and the bookkeeping ones named as left out; a long label name keeps the printed
    table aligned."""
    run = fit_with_callback(tmp_path, tiny_store, epochs=1)
    assert main(["analyze", "--run", str(run), "--no-figures"]) == 0
    out = capsys.readouterr().out
    report = json.loads((run / "analysis" / "report.json").read_text())
    n_test = len(json.loads((run / "split.json").read_text())["split_ids"]["test"])
    assert report["split"] == "test" and report["n_spectra"] == n_test and (run / "codes.zarr").exists()
    assert f"spectra: the test split of {run / 'split.json'} ({n_test} with codes)" in out

    files = [linear_fits(tmp_path / "in" / f"s{k}.fits", seed=k) for k in range(1, 7)]
    store, codes = tmp_path / "s.zarr", tmp_path / "codes.zarr"
    assert main(["ingest", str(tmp_path / "in"), "--grid", "tiny", "--output", str(store), "--quiet"]) == 0
    ckpt = next((run / "checkpoints").glob("*.ckpt"))
    assert main(["encode", "--ckpt", str(ckpt), "--store", str(store), "--output", str(codes), "--quiet"]) == 0
    table = tmp_path / "labels.csv"
    rows = [f"survey/{p.name},{5000 + 100 * k},{55000 + k},{0.1 * k}" for k, p in enumerate(files)]
    table.write_text("file,teff_K,mjd,metallicity_of_the_star_in_dex\n" + "\n".join(rows) + "\n")
    capsys.readouterr()
    args = ["analyze", "--codes", str(codes), "--labels", str(table), "--no-figures", "--intervals", "0"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    r = json.loads((tmp_path / "a" / "report.json").read_text())
    assert list(r["mi"]["ksg"]) == ["teff_K"] and r["labels_left_out"] == ["metallicity_of_the_star_in_dex", "mjd"]
    assert "labels not analysed (not physical quantities): metallicity_of_the_star_in_dex, mjd" in out
    assert "spectra: all 6 codes, training spectra included" in out
    long = "metallicity_of_the_star_in_dex"
    assert main([*args, "--output", str(tmp_path / "b"), "--label-columns", f"teff_K,{long}"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("  teff_K ", f"  {long} "))]
    assert len(lines) == 2 and lines[0].index(" 6 ") == lines[1].index(" 6 ")  # n in one column
