"""The training commands (``fit``/``validate``/``test``/``predict``), in plain sight.

:func:`run` parses one command's options with a LightningCLI subclass that only builds (``run=False``: its
parser, the config, the model, the data module and the trainer), then calls the command itself:

1. the run directory: ``--trainer.default_root_dir``, else the resumed checkpoint's run, else a new
   ``runs/<config name>/<date-time>`` (made atomically); a ``fit`` holds its lock (``RUN/run.lock``);
2. a ``--ckpt_path`` checkpoint is read as data first (``model.checkpoint_file``) and its model settings become
   the config's — a resume may not contradict the settings given, nor end before it starts;
3. ``fit`` trains, and then, when the data has a test split, runs the test loop on it: the final report is the
   test split's (checkpoints, early stopping and sweeps saw validation only); the run ends by printing where
   everything is. ``validate``/``test``/``predict`` run their loop once.

The one LightningCLI method overridden is the public ``add_arguments_to_parser``; user errors are one line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from spectra_lightning.analysis import loggers
from spectra_lightning.callbacks import EpochLines, SaveOnInterrupt
from spectra_lightning.cli.compat import alias_moved_packages
from spectra_lightning.cli.help import HelpFormatter, options_help
from spectra_lightning.cli.messages import one_line, one_line_error, user_error
from spectra_lightning.cli.names import PROG
from spectra_lightning.common.errors import ConfigError
from spectra_lightning.common.files import write_atomic
from spectra_lightning.common.run_layout import (
    checkpoint_dir,
    is_run,
    last_checkpoint,
    new_run_dir,
    override_name,
    run_file,
    run_lock_target,
    run_of,
)
from spectra_lightning.data_modules import SpectraDataModule
from spectra_lightning.model.bases import PART_BASES
from spectra_lightning.model.checkpoint_file import read_checkpoint
from spectra_lightning.model.checkpoints import check_grid, completed, model_differences
from spectra_lightning.model.module import NonFiniteLossError, SpectrumAutoencoder
from spectra_lightning.model.parts import ALLOW_ENV, allow_modules, allowing, resolve
from spectra_lightning.store.lock import StoreLockedError, WriterLock

# the run directory, for the DDP processes Lightning starts for ranks 1..N-1 (never read by rank 0: options win)
RUN_DIR_ENV = "SPECTRA_LIGHTNING_RUN_DIR"
SIGTERM_EXIT = 143  # 128 + SIGTERM, as a shell reports a process the signal ended: not finished, resumable
LIGHTNING_CHECKPOINTS = ("last", "best", "hpc", "registry")  # --ckpt_path values Lightning resolves itself


class SpectraParser(LightningArgumentParser):
    """LightningCLI's parser with errors as one line and a pointer to ``--help``, not 60 lines of usage."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)
        sys.stderr.write(f"{self.prog}: error: {one_line(message)} (see `{self.prog} --help`)\n")
        sys.exit(2)


class SpectraCLI(LightningCLI):
    """LightningCLI building one command's objects (``run=False``): the config, the model with its grid linked
    from the data, the data module and the trainer; :func:`run` runs the command."""

    def __init__(self, command: str, resources: contextlib.ExitStack, run_label: str, **kwargs):
        self.command = command
        self.resources = resources  # what the command holds until it ends (the run's lock), released by run()
        self.run_label = run_label  # the dotted overrides, e.g. "kl_schedule.weight=0.3,net.latent_dim=8"
        self.checkpoint: dict | None = None  # the --ckpt_path checkpoint, read and checked
        super().__init__(SpectrumAutoencoder, SpectraDataModule, subclass_mode_data=True, run=False, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="a checkpoint: fit continues its run (the same directory, W&B run, split and data order); the "
            "other commands evaluate it",
        )
        parser.add_argument(
            "--allow_modules",
            type=list[str],
            default=[],
            help="modules (and their submodules) whose classes a config or checkpoint may name as model parts, "
            f"besides spectra_lightning's and torch.optim's; also the setting {ALLOW_ENV}=a,b",
        )
        parser.link_arguments("data.n_pixels", "model.n_pixels", apply_on="instantiate")
        # the network is typed as a class (only a SpectrumNet subclass parses) and built with the data's length
        parser.link_arguments("data.n_pixels", "model.net.init_args.n_pixels", apply_on="instantiate")
        parser.set_defaults({"model.net": {"class_path": "spectra_lightning.model.nets.ConvAutoencoder"}})
        parser.link_arguments("data.grid_spec", "model.grid", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        cfg = self.config
        allow_modules(cfg.get("allow_modules") or [])
        check_model_parts(cfg.get("model"))
        if cfg.get("ckpt_path") and cfg.ckpt_path not in LIGHTNING_CHECKPOINTS:
            self._take_checkpoints_model(cfg.ckpt_path)
            cfg = self.config  # a new config: the checkpoint's model in it
        if not sys.stdout.isatty() and cfg.trainer.get("enable_progress_bar") is not False:
            self.trainer_defaults["callbacks"].append(EpochLines())  # logs: one line per epoch, not a bar's redraws
        resumed = self.command == "fit" and cfg.get("ckpt_path") and run_of(cfg.ckpt_path) is not None
        run_dir = self._run_dir(str(run_of(cfg.ckpt_path)) if resumed else None)
        os.environ[RUN_DIR_ENV] = run_dir
        cfg.trainer.default_root_dir = run_dir
        previous = read_run_file(run_dir) if resumed else {}
        given = cfg.trainer.logger
        for logger in given if isinstance(given, list) else [given]:
            loggers.configure_logger(logger, run_dir, self.run_label, previous.get("wandb_id"))

    def _take_checkpoints_model(self, ckpt: str) -> None:
        """As LightningCLI does, the checkpoint's model hyper-parameters become the config's model; here the
        checkpoint is read as data first, and a resume that contradicts the settings given, or that would end
        before it starts, is refused."""
        self.checkpoint = read_checkpoint(ckpt)
        hparams = {k: v for k, v in self.checkpoint["hyper_parameters"].items() if not k.startswith("_")}
        given = self.config.model.as_dict() if hasattr(self.config.model, "as_dict") else dict(self.config.model)
        defaults = self.parser.get_defaults().model.as_dict()
        differences = [] if given == defaults else model_differences(given, hparams)
        if differences and self.command == "fit":
            shown = "; ".join(differences[:4]) + (f"; ... ({len(differences)} in all)" if len(differences) > 4 else "")
            raise ConfigError(
                f"--ckpt_path {ckpt}: the checkpoint was trained with other model settings than given ({shown}); "
                "resume with the run's own config (--config RUN/config.yaml) or give the same settings"
            )
        if differences:
            print(
                f"{PROG} {self.command}: the model is the checkpoint's: {'; '.join(differences[:4])}", file=sys.stderr
            )
        if self.command == "fit":
            check_continues(self.checkpoint, self.config.trainer, ckpt)
        if hparams:
            self.config = self.parser.parse_object({"model": hparams}, self.config)

    def _run_dir(self, resumed_run: str | None) -> str:
        """The run's directory: the explicit ``--trainer.default_root_dir``, else the resumed checkpoint's run,
        else a new ``runs/<config>/<date-time>`` made atomically. DDP processes other than rank 0 take rank 0's
        from the environment (they must not name another). Rank 0 of a ``fit`` holds the run's lock: a second
        fit into the same directory at the same time is refused in one line."""
        explicit = self.config.trainer.default_root_dir
        child = getattr(rank_zero_only, "rank", 0) != 0  # from the launcher's environment (RANK, LOCAL_RANK, ...)
        run_dir = explicit or (os.environ.get(RUN_DIR_ENV) if child else None) or resumed_run
        try:
            if not run_dir:
                configs = [Path(str(c)) for c in (self.config.get("config") or [])]
                name = configs[-1].stem if configs else "default"
                run_dir = str(new_run_dir(Path("runs") / name / time.strftime("%Y%m%d-%H%M%S")))
            if self.command == "fit" and not child:
                Path(run_dir).mkdir(parents=True, exist_ok=True)
                self.resources.enter_context(WriterLock(run_lock_target(run_dir)))
        except StoreLockedError as e:
            raise ConfigError(
                f"{run_dir}: another fit is writing this run directory ({e.holder or e}); wait for it to end, or "
                "give another --trainer.default_root_dir"
            ) from None
        except OSError as e:
            raise ConfigError(
                f"--trainer.default_root_dir {run_dir}: cannot write the run there ({e.strerror or e})"
            ) from None
        return str(run_dir)


def check_continues(checkpoint: dict, trainer, ckpt: str) -> None:
    """A resume whose ``max_epochs`` / ``max_steps`` ends before the checkpoint's epoch or step: one line."""
    epochs, steps = completed(checkpoint)
    for limit, done, unit in (("max_epochs", epochs, "epochs"), ("max_steps", steps, "steps")):
        value = trainer.get(limit)
        if value is not None and value >= 0 and value <= done:
            raise ConfigError(
                f"--trainer.{limit}={value}: the checkpoint {ckpt} has completed {done} {unit} already; "
                f"give more than {done} to train on"
            )


def check_model_parts(model) -> None:
    """Each model part given in a config or on the command line names an allowed subclass of its option's base
    (``parts.resolve``), checked before jsonargparse builds it."""
    for key, base in PART_BASES.items():
        spec = model.get(key) if model is not None else None
        if spec is None:
            continue
        if hasattr(spec, "as_dict"):
            spec = spec.as_dict()
        if not isinstance(spec, dict):
            raise ConfigError(f"--model.{key}: give a class_path of a {base.__name__} subclass, not {spec!r}")
        resolve(spec, f"--model.{key}", base)


def read_run_file(run_dir) -> dict:
    try:
        return json.loads(run_file(run_dir).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def prepare_fit(cli: SpectraCLI) -> None:
    """What a fit checks and records before it trains: limits that train nothing, a checkpoint of another grid,
    the config for W&B, where checkpoints go, and the run's record (``run.json``)."""
    trainer, ckpt = cli.trainer, cli.config.get("ckpt_path")
    for limit in ("max_epochs", "max_steps"):
        if getattr(trainer, limit) == 0:
            raise ConfigError(f"--trainer.{limit}=0: nothing would be trained; give at least 1 (-1: no limit)")
    if cli.checkpoint is not None:  # a checkpoint trained on another grid cannot go on with this store
        check_grid(cli.checkpoint["hyper_parameters"], cli.datamodule.grid, f"--ckpt_path {ckpt}")
    for logger in trainer.loggers:
        if isinstance(logger, loggers.AutoWandbLogger) and trainer.is_global_zero:
            logger.log_config(yaml.safe_load(cli.parser.dump(cli.config, skip_none=False)))
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
            cb.dirpath = str(checkpoint_dir(trainer.default_root_dir))
    if trainer.is_global_zero:
        record = read_run_file(trainer.default_root_dir)
        record.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%S"))
        if ckpt:
            record.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "from": str(ckpt)})
        if wandb_id := loggers.wandb_run_id(trainer):
            record["wandb_id"] = wandb_id
        write_atomic(run_file(trainer.default_root_dir), json.dumps(record, indent=1))


def fit(cli: SpectraCLI) -> None:
    """Train; then, when the data has a test split, the test loop on it (every rank: the codes are gathered);
    then, on rank 0, where everything is."""
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    prepare_fit(cli)
    trainer.fit(model, datamodule=data, ckpt_path=cli.config.get("ckpt_path"))
    log_dir = trainer.log_dir  # a collective under DDP: every rank asks
    if trainer.num_training_batches == 0:
        n = len(getattr(data, "splits", {}).get("train", []))
        raise ConfigError(
            f"nothing was trained: no training batch (train split {n} spectra, batch size "
            f"{getattr(data, 'batch_size', '?')}, {trainer.world_size} rank(s), "
            f"limit_train_batches={trainer.limit_train_batches})"
        )
    if data.has_test_split:
        trainer.test(model, datamodule=data, verbose=False)
    if trainer.is_global_zero:
        print_where(trainer, Path(log_dir or trainer.default_root_dir))


def print_where(trainer, log_dir: Path) -> None:
    """The run's closing lines: where its directory, config, checkpoints and W&B run are, and how to explore it.
    W&B is finished first: whatever it prints as it ends comes before them."""
    run_dir = Path(trainer.default_root_dir)
    lines = [f"run directory: {run_dir}", f"config:        {log_dir / 'config.yaml'}"]
    lines += [f"{kind} checkpoint: {path}" for kind, path in loggers.run_checkpoints(trainer).items()]
    lines += [f"W&B run:       {where}" for where in loggers.wandb_locations(trainer)]
    if is_run(run_dir):
        lines.append(f"explore:       {PROG} explore --run {run_dir}")
    loggers.finish_wandb(trainer)
    print("\n".join(lines), flush=True)


def evaluate(cli: SpectraCLI) -> None:
    """``validate``, ``test`` or ``predict``: the trainer's loop of that name, once."""
    loop = getattr(cli.trainer, cli.command)
    loop(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))


def config_files(args: list[str]) -> list[str]:
    """The files named by ``--config`` in a command line."""
    out = []
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            out.append(args[i + 1])
        elif arg.startswith("--config="):
            out.append(arg.split("=", 1)[1])
    return out


def check_yaml(path: str) -> None:
    """A config that is not valid YAML: one line naming the file, the line and the problem (a tab, most often)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return  # jsonargparse says the file is missing
    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(e.problem or e.context or "invalid YAML").split())
        hint = " (YAML indents with spaces, not tabs)" if "\\t" in problem or "\t" in problem else ""
        raise ConfigError(f"{path}: {where}{problem}{hint}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None


def check_options(args: list[str]) -> None:
    """Options this CLI does not take, with where their setting lives (LightningCLI's ``--optimizer`` and
    ``--lr_scheduler`` would silently override ``model.optimizer``)."""
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in ("--optimizer", "--lr_scheduler") or name.startswith(("--optimizer.", "--lr_scheduler.")):
            part = "optimizer" if name.startswith("--optimizer") else "scheduler"
            raise ConfigError(f"{name}: the model's {part} is --model.{part} (a class_path and its init_args)")


def _no_adverts(record: logging.LogRecord) -> bool:
    """A logging filter: False for Lightning's "💡 Tip:" lines (an advert for a cloud logger)."""
    return not str(record.msg).startswith("💡 Tip:")


def quiet_lightning() -> None:
    """Lightning's notices of what is so on purpose: the module finishes each batch on the device beside a
    DataModule; its own call of a torch pytree API torch has deprecated; the seed; its cloud advert; and its advice
    against passing ``args`` (this CLI passes the command's options, without the command's name)."""
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`")
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within Python")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_adverts)  # added once: same object


def build(command: str, args: list[str], resources: contextlib.ExitStack) -> SpectraCLI:
    label = ",".join(
        f"{override_name(key)}={value}"
        for key, value in (a.split("=", 1) for a in args if a.startswith(("--model.", "--data.")) and "=" in a)
    )
    return SpectraCLI(
        command,
        resources,
        label,
        args=args,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [SaveOnInterrupt()]},  # a preempted run leaves a current last.ckpt
        parser_class=SpectraParser,
        parser_kwargs={"prog": f"{PROG} {command}", "formatter_class": HelpFormatter, "epilog": options_help()},
        auto_configure_optimizers=False,
    )


def run(command: str, args: list[str]) -> int:
    """One training command (``fit``, ``validate``, ``test``, ``predict``) with its options ``args``: 0 when done,
    2 for a user's error (one line), 1 for a non-finite loss, 143 when stopped by SIGTERM (resumable)."""
    quiet_lightning()
    alias_moved_packages()
    try:
        check_options(args)
        for path in config_files(args):
            check_yaml(path)
        # what --allow_modules allows, and the run's lock, last for this command only
        with contextlib.ExitStack() as resources, allowing():
            cli = build(command, args, resources)
            (fit if command == "fit" else evaluate)(cli)
    except SIGTERMException:
        last = last_checkpoint(os.environ.get(RUN_DIR_ENV, "RUN"))
        print(
            f"{PROG} {command}: stopped by SIGTERM before the end; continue with the same command and "
            f"--ckpt_path {last}",
            file=sys.stderr,
        )
        return SIGTERM_EXIT
    except Exception as e:
        err = user_error(e)
        if err is None:
            raise
        print(f"{PROG} {command}: error: {one_line_error(err)}", file=sys.stderr)
        return 1 if isinstance(err, NonFiniteLossError) else 2
    finally:
        if getattr(rank_zero_only, "rank", 0) == 0:
            os.environ.pop(RUN_DIR_ENV, None)  # the run's, not the next command's (in one Python process)
    return 0
