"""The training commands (``fit``/``validate``/``test``/``predict``): a LightningCLI subclass with one
directory per run, one-line user errors and the moved-package aliases of old configs."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import re
import sys
import time
import types
import warnings
from pathlib import Path

import yaml
from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from spectra_lightning.data_modules import SpectraDataModule

from .checkpoints import completed, model_differences, read_checkpoint
from .cli import PROG
from .errors import ConfigError, MovedWarning
from .files import write_atomic
from .lock import StoreLockedError, WriterLock
from .module import PART_BASES, NonFiniteLossError, SpectrumAutoencoder
from .parts import ALLOW_ENV, allow_modules, allowing, resolve
from .run_layout import (
    checkpoint_dir,
    is_run,
    last_checkpoint,
    new_run_dir,
    override_name,
    run_file,
    run_lock_target,
    run_of,
)
from .store import StoreError

RUN_DIR_ENV = "SPECTRA_LIGHTNING_RUN_DIR"  # shared with DDP child processes
SIGTERM_EXIT = 143  # 128 + SIGTERM, as a shell reports a process the signal ended: not finished, resumable
# errors that are the user's to fix: printed as one line, never as a traceback
USER_ERRORS = (ConfigError, StoreError, StoreLockedError, NonFiniteLossError)


def user_error(exc: BaseException) -> BaseException | None:
    """The first of :data:`USER_ERRORS` in ``exc``'s chain (jsonargparse wraps errors raised while it
    instantiates a class into its own, multi-line ones)."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, USER_ERRORS):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def one_line_error(err: BaseException) -> str:
    """A user error's message on one line. Raised in a DataLoader worker, it arrives re-raised with the
    worker's traceback in its message ("Caught StoreError in DataLoader worker process 0 ... Original
    Traceback ..."): its last line is the original message."""
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1]
        text = re.sub(r"^[\w.]+(Error|Exception): ", "", text)
    return " ".join(text.split())


_BOILERPLATE = (
    "Does not validate against",
    "Subtypes:",
    "Errors:",
    "Given value",
    "Problem with given class_path",
    "Parser key",
)


def one_line(message: str) -> str:
    """A jsonargparse message in one line: the full key and the innermost specific reason, e.g.
    ``--data.synth.rv_dist: Expected a typing.Literal['uniform', 'archive']. Got value: gauss``."""
    lines = [line.strip().removeprefix("- ").strip() for line in str(message).strip().splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return "invalid arguments"
    keys = [m.group(1) for line in lines if (m := re.match(r'Parser key "(.+?)":', line))]
    reasons = [line for line in lines if not line.startswith(_BOILERPLATE) and "NoneType" not in line]
    if not keys:
        return lines[0] if not reasons or reasons[0] in lines[0] else f"{lines[0]} {reasons[0]}"
    return f"--{'.'.join(keys)}: {reasons[0] if reasons else lines[0]}"


class _HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with the epilog's lines kept as written (one option per line)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


class SpectraParser(LightningArgumentParser):
    """LightningCLI's parser with errors as one line and a pointer to ``--help``, not 60 lines of usage."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {one_line(message)} (see `{prog} --help`)\n")
        sys.exit(2)


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


class SpectraCLI(LightningCLI):
    """LightningCLI with the grid length linked into the model and one directory per run.

    A run directory ``runs/<config name>/<YYYYmmdd-HHMMSS>`` (or ``--trainer.default_root_dir``)
    holds the resolved config, the split, checkpoints, figures and the W&B files. ``fit --ckpt_path``
    with a checkpoint of a run directory continues that run: same directory, checkpoints, W&B run.
    """

    _checkpoint_hparams: dict | None = None  # the --ckpt_path checkpoint's, read and checked by _parse_ckpt_path

    def __init__(self, *args, resources: contextlib.ExitStack, **kwargs):
        self._resources = resources  # what the command holds until it ends (the run's lock), released by run()
        super().__init__(*args, **kwargs)

    run_label = ""  # set by run(): the dotted overrides, e.g. "kl_schedule.weight=0.3,net.latent_dim=8"

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs) -> None:
        super()._add_subcommands(parser, **kwargs)
        subcommands = parser._subcommands_action
        for name, sub in (subcommands._name_parser_map if subcommands is not None else {}).items():
            sub.prog = f"{PROG} {name}"  # not "... [options] fit": the usage shows what users type
            sub.epilog = options_help()

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
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
        parser.set_defaults({"model.net": {"class_path": "spectra_lightning.nets.ConvAutoencoder"}})
        parser.link_arguments("data.grid_spec", "model.grid", apply_on="instantiate")

    def _parse_ckpt_path(self) -> None:
        # As LightningCLI's: the checkpoint's model hyper-parameters become the config's model. Here the checkpoint
        # is read as data first (checkpoints.read_checkpoint: its parts must name allowed classes, its weights be
        # intact and finite), a resume may not contradict the model settings given, nor end before it starts.
        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else None
        if cfg is None:
            return
        allow_modules(cfg.get("allow_modules") or [])
        ckpt = cfg.get("ckpt_path")
        if not ckpt or ckpt in ("last", "best", "hpc", "registry"):
            return
        checkpoint = read_checkpoint(ckpt)
        saved = self._checkpoint_hparams = checkpoint["hyper_parameters"]
        hparams = {k: v for k, v in saved.items() if not k.startswith("_")}
        given = cfg.model.as_dict() if hasattr(cfg.model, "as_dict") else dict(cfg.model or {})
        defaults = self._parser(sub).get_defaults().model
        differences = [] if given == defaults.as_dict() else model_differences(given, hparams)
        if differences and sub == "fit":
            shown = "; ".join(differences[:4]) + (f"; ... ({len(differences)} in all)" if len(differences) > 4 else "")
            raise ConfigError(
                f"--ckpt_path {ckpt}: the checkpoint was trained with other model settings than given ({shown}); "
                "resume with the run's own config (--config RUN/config.yaml) or give the same settings"
            )
        if differences:
            print(f"{PROG} {sub}: the model is the checkpoint's: {'; '.join(differences[:4])}", file=sys.stderr)
        if sub == "fit":
            check_continues(checkpoint, cfg.trainer, ckpt)
        if hparams:
            self.config = self.parser.parse_object({sub: {"model": hparams}}, self.config)

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand]
        check_model_parts(cfg.get("model"))
        ckpt = cfg.get("ckpt_path")
        resumed = self.subcommand == "fit" and ckpt and run_of(ckpt) is not None
        run_dir = self._run_dir(cfg, str(run_of(ckpt)) if resumed else None)
        os.environ[RUN_DIR_ENV] = run_dir  # for the DDP processes Lightning starts: they name no directory
        cfg.trainer.default_root_dir = run_dir
        previous = read_run_file(run_dir) if resumed else {}
        from .loggers import configure_logger

        loggers = cfg.trainer.logger
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            configure_logger(logger, run_dir, self.run_label, previous.get("wandb_id"))

    def _run_dir(self, cfg, resumed_run: str | None) -> str:
        """The run's directory: the explicit ``--trainer.default_root_dir``, else the resumed checkpoint's run,
        else a new ``runs/<config>/<date-time>`` made atomically. DDP processes other than rank 0 take rank 0's
        from the environment (they must not name another). Rank 0 of a ``fit`` holds the run's lock: a second
        fit into the same directory at the same time is refused in one line."""
        explicit = cfg.trainer.default_root_dir
        child = getattr(rank_zero_only, "rank", 0) != 0  # from the launcher's environment (RANK, LOCAL_RANK, ...)
        run_dir = explicit or (os.environ.get(RUN_DIR_ENV) if child else None) or resumed_run
        try:
            if not run_dir:
                configs = [Path(str(c)) for c in (cfg.get("config") or [])]
                name = configs[-1].stem if configs else "default"
                run_dir = str(new_run_dir(Path("runs") / name / time.strftime("%Y%m%d-%H%M%S")))
            if self.subcommand == "fit" and not child:
                Path(run_dir).mkdir(parents=True, exist_ok=True)
                self._resources.enter_context(WriterLock(run_lock_target(run_dir)))
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

    def _instantiate_trainer(self, config: dict, callbacks: list):
        from spectra_lightning.callbacks import EpochLines, SaveOnInterrupt

        callbacks = [*callbacks, SaveOnInterrupt()]  # a preempted run leaves a current last.ckpt
        if not sys.stdout.isatty() and config.get("enable_progress_bar", True) is not False:
            callbacks.append(EpochLines())  # logs get one line per epoch, not a bar's redraws
        return super()._instantiate_trainer(config, callbacks)

    def before_fit(self) -> None:
        from .loggers import AutoWandbLogger

        for limit in ("max_epochs", "max_steps"):
            if getattr(self.trainer, limit) == 0:
                raise ConfigError(f"--trainer.{limit}=0: nothing would be trained; give at least 1 (-1: no limit)")
        ckpt = self.config[self.subcommand].get("ckpt_path")
        if getattr(self, "_checkpoint_hparams", None) is not None:
            self._check_checkpoint_grid(ckpt)
        for logger in self.trainer.loggers:
            if isinstance(logger, AutoWandbLogger) and self.trainer.is_global_zero:
                parser = self._parser(self.subcommand)
                logger.log_config(yaml.safe_load(parser.dump(self.config[self.subcommand], skip_none=False)))
        for cb in self.trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
                cb.dirpath = str(checkpoint_dir(self.trainer.default_root_dir))
        if self.trainer.is_global_zero:
            self._record_run(ckpt)

    def _check_checkpoint_grid(self, ckpt: str) -> None:
        """A checkpoint trained on another grid cannot go on with this store: say so, not a size mismatch."""
        saved = self._checkpoint_hparams or {}
        for key in ("n_pixels", "grid"):
            if saved.get(key) is not None and saved[key] != self.model.hparams.get(key):
                raise ConfigError(
                    f"--ckpt_path {ckpt}: the checkpoint was trained with {key} {saved[key]}, "
                    f"but the data ({self.datamodule.store_path}) has {self.model.hparams.get(key)}"
                )

    def _record_run(self, ckpt: str | None) -> None:
        run_dir = Path(self.trainer.default_root_dir)
        record = read_run_file(run_dir)
        record.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%S"))
        if ckpt:
            record.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "from": str(ckpt)})
        from .loggers import wandb_run_id

        wandb_id = wandb_run_id(self.trainer)
        if wandb_id:
            record["wandb_id"] = wandb_id
        write_atomic(run_file(run_dir), json.dumps(record, indent=1))

    def after_fit(self) -> None:
        log_dir = self.trainer.log_dir  # a collective under DDP: call it on every rank
        if self.trainer.num_training_batches == 0:
            dm = getattr(self.trainer, "datamodule", None)
            n = len(getattr(dm, "splits", {}).get("train", [])) if dm is not None else "?"
            raise ConfigError(
                f"nothing was trained: no training batch (train split {n} spectra, batch size "
                f"{getattr(dm, 'batch_size', '?')}, {self.trainer.world_size} rank(s), "
                f"limit_train_batches={self.trainer.limit_train_batches})"
            )
        if any(getattr(cb, "pending_test", False) for cb in getattr(self.trainer, "callbacks", [])):
            # the final report is the test split's (LatentMetrics collects the codes); checkpoints, early
            # stopping and sweeps saw validation only. Every rank runs it (the codes are gathered).
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        if not self.trainer.is_global_zero:
            return
        run_dir = Path(self.trainer.default_root_dir)
        lines = [f"run directory: {run_dir}", f"config:        {Path(log_dir or run_dir) / 'config.yaml'}"]
        from .loggers import finish_wandb, run_checkpoints, wandb_locations

        lines += [f"{kind} checkpoint: {path}" for kind, path in run_checkpoints(self.trainer).items()]
        lines += [f"W&B run:       {where}" for where in wandb_locations(self.trainer)]
        if is_run(run_dir):
            lines.append(f"explore:       {PROG} explore --run {run_dir}")
        # the run is complete: a later fit (or resume) starts cleanly; whatever W&B prints as it ends comes
        # before where to look, which is what the terminal ends with
        finish_wandb(self.trainer)
        print("\n".join(lines), flush=True)


def documented_args(cls: type) -> dict[str, str]:
    """``{parameter: help}`` from a class's docstring ``Args:`` section (what jsonargparse shows as help)."""
    import inspect

    entries: dict[str, str] = {}
    last = None
    for line in (inspect.getdoc(cls) or "").split("Args:", 1)[-1].splitlines():
        m = re.match(r"^ {4}(\w+): (.+)$", line)
        if m:
            last = m[1]
            entries[last] = m[2]
        elif last and line.startswith(" " * 8):
            entries[last] += " " + line.strip()  # the entry's next line
    return entries


def _short(text: str) -> str:
    """A help text's first sentence, without reST markup."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", " ".join(text.split()).replace("``", ""))
    return re.split(r"(?<!al)\. ", text)[0].rstrip(".")


def options_help() -> str:
    """The DataModule's options and the model parts' (network, loss, KL schedule), which ``--help`` otherwise
    hides behind ``--data.help CLASS`` / ``--model.loss.help CLASS``: one line each."""
    import inspect

    from spectra_lightning.data_modules import SpectraDataModule, StreamingSpectraDataModule

    from . import kl_schedules, losses, nets

    lines = [f"  --data.init_args.{k:16s} {_short(v)}" for k, v in documented_args(SpectraDataModule).items()]
    names = f"{SpectraDataModule.__name__} (map-style) or {StreamingSpectraDataModule.__name__}"
    out = [f"data options (--data.class_path: {names}):", *lines]
    out.append(
        f"all of them: {PROG} fit --data.help {SpectraDataModule.__name__} (or {StreamingSpectraDataModule.__name__})"
    )
    out.append("\nmodel parts (--model.net / .loss / .kl_schedule: a class_path and its init_args):")
    for part, classes in (
        ("net", [nets.ConvAutoencoder]),
        ("loss", [losses.AbsoluteError, losses.SquaredError, losses.ChiSquared]),
        ("kl_schedule", [kl_schedules.Constant, kl_schedules.LinearWarmup, kl_schedules.CapacityAnnealing]),
    ):
        for cls in classes:
            summary = _short((inspect.getdoc(cls) or "").split("\n\n")[0])
            out.append(f"  {part}: {cls.__module__}.{cls.__name__} - {summary}")
            params = [p for p in inspect.signature(cls).parameters if p != "n_pixels"]
            docs = documented_args(cls)
            out += [f"    --model.{part}.init_args.{p:15s} {_short(docs.get(p, ''))}" for p in params]
    out.append(f"a part's options in full: {PROG} fit --model.loss.help SquaredError (or another class)")
    return "\n".join(out)


def read_run_file(run_dir) -> dict:
    try:
        return json.loads(run_file(run_dir).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


# configs written before 0.2 name the classes by the folders' old top-level package names
MOVED_PACKAGES = {"callbacks": "spectra_lightning.callbacks", "data_modules": "spectra_lightning.data_modules"}


class _MovedPackage(types.ModuleType):
    """Stands in for a package that moved: ``callbacks.X`` warns once and is ``spectra_lightning.callbacks.X``."""

    def __init__(self, old: str, new: str):
        super().__init__(old)
        self.__path__: list[str] = []  # a package, so `old.submodule` fails as "no module" rather than oddly
        self._new = new

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        warnings.warn(
            f"'{self.__name__}.{name}' is now '{self._new}.{name}': update the config", MovedWarning, stacklevel=2
        )
        return getattr(importlib.import_module(self._new), name)


def alias_moved_packages() -> None:
    """Let old configs' class paths resolve, unless another installed package owns the old name."""
    here = Path(__file__).resolve().parent.parent
    for old, new in MOVED_PACKAGES.items():
        if old in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(old)
        except (ImportError, ValueError):
            spec = None
        if spec is None or (spec.origin and Path(spec.origin).resolve().parent.parent == here):
            sys.modules[old] = _MovedPackage(old, new)


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


def _no_adverts(record: logging.LogRecord) -> bool:
    """A logging filter: False for Lightning's "💡 Tip:" lines (an advert for a cloud logger)."""
    return not str(record.msg).startswith("💡 Tip:")


def run(args: list[str], from_argv: bool) -> int:
    """One training command (``args[0]`` in :data:`~spectra_lightning.cli.TRAINER_COMMANDS`); from
    ``sys.argv`` when ``from_argv`` (DDP children re-read it)."""
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)  # no "Seed set to 0" line
    # Lightning's notices of what is so on purpose: the module finishes each batch on the device beside a
    # DataModule, and Lightning's own call of a torch pytree API that torch has deprecated
    warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`")
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_adverts)  # added once: same object
    alias_moved_packages()
    had_run_dir = RUN_DIR_ENV in os.environ
    SpectraCLI.run_label = ",".join(
        f"{override_name(key)}={value}"
        for key, value in (a.split("=", 1) for a in args if a.startswith(("--model.", "--data.")) and "=" in a)
    )
    try:
        for path in config_files(args):
            check_yaml(path)
        # what --allow_modules allows, and the run's lock, last for this command only
        with contextlib.ExitStack() as resources, allowing():
            SpectraCLI(
                SpectrumAutoencoder,
                SpectraDataModule,
                resources=resources,
                subclass_mode_data=True,
                args=None if from_argv else args,
                save_config_kwargs={"overwrite": True},
                parser_class=SpectraParser,
                parser_kwargs={"prog": PROG, "formatter_class": _HelpFormatter},
            )
    except SIGTERMException:
        last = last_checkpoint(os.environ.get(RUN_DIR_ENV, "RUN"))
        print(
            f"{PROG} {args[0]}: stopped by SIGTERM before the end; continue with the same command and "
            f"--ckpt_path {last}",
            file=sys.stderr,
        )
        return SIGTERM_EXIT
    except Exception as e:
        err = user_error(e)
        if err is None:
            raise
        print(f"{PROG} {args[0]}: error: {one_line_error(err)}", file=sys.stderr)
        return 1 if isinstance(err, NonFiniteLossError) else 2
    finally:
        if not had_run_dir:
            os.environ.pop(RUN_DIR_ENV, None)
    return 0
