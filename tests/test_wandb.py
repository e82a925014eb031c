"""What a W&B dashboard gets from a fit, read back from the offline run with W&B's own record schema."""

import json

from spectra_lightning.cli import main

from helpers import tiny_config, wandb_records


def items(update) -> dict:
    return {(u.key or "/".join(u.nested_key)): json.loads(u.value_json) for u in update}


def test_offline_run_holds_per_epoch_scalars_final_tables_summary_and_artifacts(tmp_path, tiny_store):
    checkpoints = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"monitor": "val/objective"}},
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"save_top_k": 0, "save_last": True},
        },
    ]
    metrics = {"class_path": "spectra_lightning.callbacks.LatentMetrics", "init_args": {"final_figures": False}}
    cfg = tiny_config(
        tmp_path,
        tiny_store,
        max_epochs=2,
        logger={"class_path": "spectra_lightning.analysis.loggers.AutoWandbLogger", "init_args": {"project": "test"}},
        callbacks=[*checkpoints, metrics],
    )
    assert main(["fit", "--config", str(cfg)]) == 0
    report = json.loads((tmp_path / "run/report.json").read_text())
    (run,) = (tmp_path / "run/wandb").glob("offline-run-*")
    records = wandb_records(run)
    kinds = [r.WhichOneof("record_type") for r in records]
    history = [items(r.history.item) for r, k in zip(records, kinds) if k == "history"]
    summary: dict = {}
    for r, k in zip(records, kinds):
        if k == "summary":
            summary.update(items(r.summary.update))
    artifacts = [r.artifact for r, k in zip(records, kinds) if k == "artifact"]

    # per epoch: every node's MAD, the largest, and best / runner-up node and MI per label
    epochs = [h for h in history if "val/mad/n_informative" in h]
    assert len(epochs) == 2
    for h in epochs:
        mads = [h[f"val/mad/node_{i:03d}"] for i in range(4)]
        assert h["val/mad/best"] == max(mads) and h["val/mad/best_node"] == mads.index(max(mads))
        assert {
            "val/mi/teff/best",
            "val/mi/teff/best_node",
            "val/mi/teff/runner_up",
            "val/mi/teff/runner_up_node",
        } <= set(h)
    # the epochs read the validation split; the final report the test split
    split = json.loads((tmp_path / "run/split.json").read_text())["split_ids"]
    assert report["n_spectra"] == len(split["test"]) and not set(split["test"]) & set(split["val"])

    # the run summary: final MI per label and the informative count, as in report.json
    assert summary["final/n_informative"] == len(report["mad"]["informative"])
    for label, entry in report["mi"]["ksg"].items():
        if entry.get("best_node") is not None:
            assert (
                summary[f"final/mi/{label}"] == entry["best"]
                and summary[f"final/mi/{label}/node"] == entry["best_node"]
            )
            # with its interval, the null, the verdict and the best label-free baseline
            assert [summary[f"final/mi/{label}/low"], summary[f"final/mi/{label}/high"]] == entry["intervals"]["best"][
                "interval"
            ]
            assert summary[f"final/mi/{label}/distinct"] == int(entry["intervals"]["distinct"])
            assert summary[f"final/mi/{label}/baseline"] == entry["baseline"]["value"]
    assert summary["final/split"] == report["split"] == "test"
    # the separation block: MIG and DCI with their intervals, each label's verdict, each node's in a table
    sep = report["separation"]
    assert [summary["final/mig"], summary["final/mig/low"], summary["final/mig/high"]] == [
        sep["mig"][k] for k in ("value", "lo", "hi")
    ]
    assert summary["final/dci/completeness"] == sep["dci"]["completeness"]["value"]
    assert summary["final/clean_nodes"] == sum(v["clean"] for v in sep["nodes"].values())
    for label, e in sep["labels"].items():
        assert summary[f"final/sep/{label}/clean"] == int(e["clean"])
        assert summary[f"final/sep/{label}/cmi"] == e["cmi"]["value"]
    verdicts = json.loads(next((run / "files/media/table/final").glob("node_verdicts_*.table.json")).read_text())
    assert [str(row[0]) for row in verdicts["data"]] == list(sep["nodes"])
    assert [row[-1] for row in verdicts["data"]] == [v["clean"] for v in sep["nodes"].values()]

    # the two tables, as wandb.Table files, with the report's numbers
    table = json.loads(next((run / "files/media/table/final").glob("mi_table_*.table.json")).read_text())
    assert table["columns"][:4] == ["node", "mad", "kl_nat", "informative"] and len(table["data"]) == 4
    col = table["columns"].index("mi_teff")
    assert [row[col] for row in table["data"]] == report["mi"]["ksg"]["teff"]["values"]
    informative = json.loads(next((run / "files/media/table/final").glob("informative_nodes_*.table.json")).read_text())
    assert [row[0] for row in informative["data"]] == report["mad"]["informative"]

    # artifacts: report.json + config.yaml; the checkpoints with aliases best and last
    by_name: dict = {}
    for a in artifacts:
        by_name.setdefault(a.type, []).append(a)
    (rep,) = by_name["latent-report"]
    assert sorted(e.path for e in rep.manifest.contents) == ["config.yaml", "report.json"]
    aliases = {alias for a in by_name["model"] for alias in a.aliases}
    assert {"best", "last"} <= aliases
    assert all(sorted(e.path for e in a.manifest.contents) == ["config.yaml", "model.ckpt"] for a in by_name["model"])
