"""Weights & Biases logging that never needs the network unless an account is set up."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

from spectra_lightning.common.run_layout import report_file


def wandb_credentials() -> bool:
    """True when an API key is configured (``WANDB_API_KEY`` or a netrc entry for the host)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class AutoWandbLogger(WandbLogger):
    """``WandbLogger`` that goes offline by itself when no API key is configured.

    Offline runs land in ``<save_dir>/wandb/`` and can be uploaded later with
    ``wandb sync``. ``save_dir`` defaults to the run directory chosen by the CLI.

    Args:
        offline: force offline (True) or online (False); None decides from the credentials.
        kwargs: anything ``lightning.pytorch.loggers.WandbLogger`` takes.
    """

    def __init__(self, project: str = "spectra-lightning", save_dir: str = ".", offline: bool | None = None, **kwargs):
        if offline is None:
            offline = os.environ.get("WANDB_MODE") in ("offline", "dryrun") or not wandb_credentials()
        os.makedirs(save_dir, exist_ok=True)
        if kwargs.get("settings") is None:  # W&B's run history/summary footer would bury the run's own summary
            import wandb

            kwargs["settings"] = wandb.Settings(quiet=True)
        super().__init__(project=project, save_dir=save_dir, offline=offline, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # unset, yet passed on: W&B warns that it has no effect
            self._wandb_init.pop("anonymous", None)
        self.full_config: dict | None = None

    def log_config(self, config: dict) -> None:
        """Send the whole nested run config once; later hyper-parameter logs add only new keys."""
        self.full_config = config
        self.experiment.config.update(config, allow_val_change=True)

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        if self.full_config is not None:
            # model/datamodule hparams are already in the nested config: no flattened duplicates
            params = {
                k: v
                for k, v in dict(params).items()
                if k not in self.full_config.get("model", {})
                and k not in self.full_config.get("data", {}).get("init_args", {})
            }
            if not params:
                return
        super().log_hyperparams(params, *args, **kwargs)


def run_checkpoints(trainer) -> dict[str, str]:
    """``{"best": path, "last": path}`` of the checkpoints the run's ``ModelCheckpoint`` callbacks wrote
    (either missing when none was). "last" is a ``save_last`` file or the file of a callback without a
    monitor (the recipes' ``last.ckpt``, rewritten every epoch)."""
    found: dict[str, str] = {}
    for cb in trainer.checkpoint_callbacks:
        monitor = getattr(cb, "monitor", None)
        if monitor and cb.best_model_path:
            found.setdefault("best", cb.best_model_path)
        last = getattr(cb, "last_model_path", "") or ("" if monitor else cb.best_model_path)
        if last:
            found.setdefault("last", last)
    return {k: p for k, p in found.items() if os.path.isfile(p)}


def report_tables(report: dict) -> dict[str, tuple[list[str], list[list]]]:
    """The final report as two tables ``{name: (columns, rows)}``: ``mi_table`` (every node: MAD, KL,
    informative, KSG MI with each label) and ``informative_nodes`` (each: MAD, KL, the label it shares
    most information with and that MI)."""
    mad = report["mad"]
    kl = mad["kl"] or [None] * len(mad["values"])
    ksg = {name: e["values"] for name, e in report["mi"].get("ksg", {}).items() if "values" in e}
    informative = set(mad["informative"])
    mi_rows = [
        [node, mad["values"][node], kl[node], node in informative, *(ksg[name][node] for name in ksg)]
        for node in range(len(mad["values"]))
    ]
    inf_rows = []
    for node in mad["informative"]:
        best = max(ksg, key=lambda name: ksg[name][node] or 0.0, default=None)
        inf_rows.append([node, mad["values"][node], kl[node], best, ksg[best][node] if best else None])
    tables = {
        "mi_table": (["node", "mad", "kl_nat", "informative", *(f"mi_{name}" for name in ksg)], mi_rows),
        "informative_nodes": (["node", "mad", "kl_nat", "best_label", "mi_nat"], inf_rows),
    }
    nodes = (report.get("separation") or {}).get("nodes", {})
    if nodes:
        columns = ["node", "best_label", "best_mi", "second_label", "second_mi", "clean"]
        tables["node_verdicts"] = (columns, [[int(j), *(v[c] for c in columns[1:])] for j, v in nodes.items()])
    return tables


def report_summary(report: dict) -> dict[str, float | int | str]:
    """Run-summary keys a sweep dashboard plots directly (Figure 4: ``final/n_informative`` against
    ``model.kl_schedule.init_args.weight`` per ``model.net.init_args.latent_dim``; the final MI per label with its
    interval, the null, the distinct verdict and the best label-free baseline; ``final/split``: the spectra it
    was computed on)."""
    out: dict[str, float | int | str] = {
        "final/n_informative": len(report["mad"]["informative"]),
        "final/split": report.get("split") or "",
    }
    for name, e in report["mi"].get("ksg", {}).items():
        if e.get("best_node") is None:
            continue
        key = f"final/mi/{name}"
        out[key] = e["best"]
        out[f"{key}/node"] = e["best_node"]
        out[f"{key}/runner_up"] = e["runner_up_value"]
        iv = e.get("intervals") or {}
        if iv.get("best"):
            out[f"{key}/low"], out[f"{key}/high"] = iv["best"]["interval"]
            out[f"{key}/null_p95"] = iv["null"]["p95"]
            out[f"{key}/distinct"] = int(iv["distinct"])
        b = e.get("baseline") or {}
        if b.get("best"):
            out[f"{key}/baseline"] = b["value"]
            out[f"{key}/baseline_name"] = b["best"]
    out.update(separation_summary(report.get("separation")))
    return out


def separation_summary(sep: dict | None) -> dict[str, float | int]:
    """The separation block's run-summary keys: ``final/mig`` and ``final/dci/<score>`` with their intervals,
    ``final/clean_nodes`` (of the nodes examined), and per label ``final/sep/<label>/clean`` and ``/cmi``."""
    if not sep:
        return {}
    out: dict[str, float | int] = {"final/clean_nodes": sum(bool(v["clean"]) for v in sep["nodes"].values())}
    spans = {"final/mig": sep["mig"], **{f"final/dci/{k}": v for k, v in sep["dci"].items()}}
    for key, span in spans.items():
        out[key], out[f"{key}/low"], out[f"{key}/high"] = span["value"], span["lo"], span["hi"]
    for label, e in sep["labels"].items():
        out[f"final/sep/{label}/clean"] = int(e["clean"])
        out[f"final/sep/{label}/cmi"] = e["cmi"]["value"]
    return out


def log_final_report(trainer, report: dict, run_dir: Path) -> None:
    """Send the end of a fit to each W&B logger of ``trainer`` (online or offline alike): the two report tables,
    the summary keys, ``report.json`` + the run's ``config.yaml`` as a ``latent-report`` artifact, and the
    checkpoints as a ``model`` artifact with aliases ``best`` and ``last``."""
    for logger in _wandb_loggers(trainer):
        _log_final_report(logger, report, run_dir, run_checkpoints(trainer))


def _log_final_report(logger: WandbLogger, report: dict, run_dir: Path, checkpoints: dict[str, str]) -> None:
    import wandb

    run = logger.experiment
    run.log(
        {
            f"final/{name}": wandb.Table(columns=list[str | int](cols), data=rows)
            for name, (cols, rows) in report_tables(report).items()
        }
    )
    run.summary.update(report_summary(report))
    files = wandb.Artifact(f"report-{run.id}", type="latent-report", metadata={"n_spectra": report["n_spectra"]})
    files.add_file(str(report_file(run_dir)))
    config = next(iter(sorted(run_dir.rglob("config.yaml"))), None)  # SaveConfigCallback's copy
    if config is not None:
        files.add_file(str(config), name="config.yaml")
    run.log_artifact(files)
    by_path: dict[str, list[str]] = {}
    for alias, path in checkpoints.items():
        by_path.setdefault(path, []).append(alias)
    for path, aliases in by_path.items():  # one version per file; one version with both when best is last
        model = wandb.Artifact(f"model-{run.id}", type="model")
        model.add_file(path, name="model.ckpt")
        if config is not None:
            model.add_file(str(config), name="config.yaml")
        run.log_artifact(model, aliases=aliases)


def configure_logger(logger, run_dir: str, run_label: str, wandb_id: str | None) -> None:
    """Point a configured logger (a jsonargparse namespace, before it is built) at the run directory; a W&B
    logger is grouped by sweep and named by its parameters, and continues the run's W&B run on a resume."""
    init = getattr(logger, "init_args", None)
    if init is None:
        return
    if "save_dir" in init and init.save_dir in (None, "."):
        init.save_dir = run_dir
    if not str(getattr(logger, "class_path", "")).endswith("WandbLogger"):
        return
    if not init.get("group"):
        init.group = os.environ.get("WANDB_RUN_GROUP") or Path(run_dir).parent.name
    if not init.get("name"):
        init.name = os.environ.get("WANDB_NAME") or run_label or None
    if wandb_id and not init.get("id"):
        init.id = wandb_id  # the same W&B run goes on
        init.resume = "allow"


def _wandb_loggers(trainer) -> list:
    return [lg for lg in trainer.loggers if type(lg).__name__.endswith("WandbLogger")]


def wandb_run_id(trainer) -> str | None:
    """The W&B run id of a trainer's W&B logger (None without one)."""
    loggers = _wandb_loggers(trainer)
    return loggers[-1].experiment.id if loggers else None


def wandb_locations(trainer) -> list[str]:
    """Where each W&B run of a trainer is: online (its URL) or offline (the ``wandb sync`` command)."""
    out = []
    for logger in _wandb_loggers(trainer):
        exp = logger.experiment
        if getattr(exp, "dir", None):
            offline = getattr(exp.settings, "mode", "") == "offline" or exp.offline
            out.append(f"offline: upload with `wandb sync {Path(exp.dir).parent}`" if offline else f"online: {exp.url}")
    return out


def finish_wandb(trainer) -> None:
    """End a trainer's W&B runs (a later fit, or a resume, then starts cleanly)."""
    for logger in _wandb_loggers(trainer):
        if logger._experiment is not None:
            logger.experiment.finish()


def log_sweep_figures(out: Path, paths: dict[str, Path]) -> None:
    """A sweep report's figures as a W&B run of their own (offline unless an API key is configured)."""
    if os.environ.get("WANDB_MODE") == "disabled":
        return
    import wandb

    mode = "online" if wandb_credentials() and os.environ.get("WANDB_MODE") != "offline" else "offline"
    run = wandb.init(
        project="spectra-lightning",
        group=out.name,
        name=f"{out.name}-report",
        job_type="sweep-report",
        dir=str(out),
        mode=cast(Literal["online", "offline", "disabled"], mode),
        reinit="finish_previous",
    )
    run.log({f"sweep/{k}": wandb.Image(str(p)) for k, p in paths.items()})
    run.finish()
