"""Train and evaluate one model on one cross-domain dataset by the cold-start protocol.

The counterpart of ``recbole.quick_start.run_recbole``: same Config, logging, trainer and
checkpoints, but the dataset is :class:`CrossDomainDataset` (cold-start split) and evaluation is
the cold-start evaluator, for the plugin's models and RecBole's built-ins alike.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

import torch
from recbole.config import Config
from recbole.data.utils import create_samplers, get_dataloader
from recbole.utils import (
    calculate_valid_score,
    get_model,
    get_trainer,
    init_logger,
    init_seed,
    set_color,
)

from dataset_prep.demo_build import ensure_demo_dataset
from dataset_prep.layout import BUILD_RECORD, DEMO_DATASET
from recbole_music.checkpoint import plain_settings, write_average_checkpoint
from recbole_music.config import config_files, is_sequential, setting
from recbole_music.data.dataset import CrossDomainDataset
from recbole_music.data.sequence_dataset import SequentialCrossDomainDataset
from recbole_music.distributed import (
    GroupConfig,
    check_processes_agree,
    is_distributed,
    is_main_process,
    seed_process_shares,
)
from recbole_music.epoch_progress import EpochProgress, summary_line
from recbole_music.evaluation.cold_start_evaluator import (
    UNSEEN_ITEM_FALLBACK,
    convention_of,
    predicts_ratings,
)
from recbole_music.evaluation.sequential_evaluator import (
    SEQUENTIAL_CONVENTION,
    sequential_conventions,
)
from recbole_music.model.score_average import ScoreAverage
from recbole_music.registry import PLUGIN_MODELS
from recbole_music.size_search import TrainedCandidate, candidate_settings, search_sizes
from recbole_music.trainer.cold_start_trainer import reserve_file, with_cold_start_evaluation
from recbole_music.trainer.sequential_trainer import with_sequential_evaluation


class DatasetNotFoundError(FileNotFoundError):
    pass


def resolve_model(name: str) -> type:
    if name in PLUGIN_MODELS:
        return PLUGIN_MODELS[name]
    unknown = (
        f"unknown model '{name}': neither a recbole-music model "
        f"({', '.join(sorted(PLUGIN_MODELS))}) nor a RecBole built-in model name"
    )
    try:
        return get_model(name)
    except ValueError:
        raise ValueError(unknown) from None
    except AttributeError:  # the module exists but the class is spelled otherwise ("bpr")
        raise ValueError(f"{unknown} (model names are case-sensitive)") from None
    except ImportError as error:
        # RecBole's lookup ends in recbole.model.exlib_recommender, whose package imports xgboost
        # and lightgbm: without them every unknown name fails there with an ImportError.
        if name.lower() in ("xgboost", "lightgbm"):
            raise ValueError(
                f"model '{name}' needs a package that is not installed: {error}"
            ) from None
        raise ValueError(unknown) from None


def ensure_dataset(dataset: str, data_root: Path) -> Path:
    """The dataset folder; the demo is generated and built on first use."""
    folder = data_root / dataset
    if (folder / f"{dataset}.inter").is_file():
        return folder
    if dataset == DEMO_DATASET:
        return Path(ensure_demo_dataset(out_root=str(data_root)))
    raise DatasetNotFoundError(
        f"no data for dataset '{dataset}': {folder / (dataset + '.inter')} does not exist. "
        f"Build it with `python -m dataset_prep build --name {dataset} ...` "
        f"(or try --dataset={DEMO_DATASET}, generated on first use)"
    )


def read_build_info(folder: Path) -> dict:
    path = folder / BUILD_RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


def prepare_data(config, dataset: CrossDomainDataset):
    """(train dataloader, valid dataset or None, test dataset) of the cold-start split."""
    built = dataset.build()
    train_set, valid_set, test_set = built
    train_sampler, _, _ = create_samplers(config, dataset, built)
    train_data = get_dataloader(config, "train")(
        config, train_set, train_sampler, shuffle=config["shuffle"]
    )
    seed_process_shares(train_data, config)
    return train_data, (valid_set if len(valid_set) else None), test_set


def probe_config(config_file_list, config_dict) -> Config:
    """The run-wide settings (paths) of a run, before its model and dataset are known."""
    # without local_rank: a probe must not join a process group
    settings = {k: v for k, v in (config_dict or {}).items() if k != "local_rank"}
    return Config(model="Pop", dataset="_", config_file_list=config_file_list, config_dict=settings)


def _data_root(config_file_list, config_dict) -> Path:
    return Path(probe_config(config_file_list, config_dict)["data_path"]).parent


_run_log_handlers: list[logging.Handler] = []


def _init_run_logger(config) -> None:
    """RecBole's ``init_logger`` (console + ``log/<model>/...log``), one log file per run.

    It installs its handlers with ``logging.basicConfig``, a no-op once the root logger has
    handlers, so a second run in the same process would log into the first run's file. Remove
    the previous run's handlers first. Unless ``verbose`` is set, the console handler passes
    warnings and errors only: the log file keeps everything.
    """
    root = logging.getLogger()
    for handler in _run_log_handlers:
        root.removeHandler(handler)
        handler.close()
    before = set(root.handlers)
    # RecBole names the file after model, dataset, time to the second and a hash of the settings:
    # two identical runs started in the same second would append to one file, interleaved.
    # RecBole checks for its log and checkpoint folders and then creates them: a second run
    # started at the same moment can create one in between, and the first dies on FileExistsError.
    for folder in (os.path.join("log", config["model"]), config["checkpoint_dir"]):
        os.makedirs(folder, exist_ok=True)
    with mock.patch.object(logging, "FileHandler", _OwnFileHandler):
        init_logger(config)
    _run_log_handlers[:] = [h for h in root.handlers if h not in before]
    if not config["verbose"]:
        for handler in _run_log_handlers:
            if not isinstance(handler, logging.FileHandler):  # the console
                handler.setLevel(logging.WARNING)


class _OwnFileHandler(logging.FileHandler):
    """A log file of this run alone: RecBole's name, or ``-2``, ``-3`` … when it is taken."""

    def __init__(self, filename, *args, **kwargs):
        super().__init__(reserve_file(os.fspath(filename)), *args, **kwargs)


def _quiet_known_recbole_warnings() -> None:
    """RecBole 1.2.1 on torch 2.13 / pandas 2.x warns on every epoch about its own deprecated
    calls (torch.cuda.amp.GradScaler, chained in-place fillna); they are not the user's to fix."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    warnings.filterwarnings("ignore", message=r".*GradScaler.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*inplace method.*", category=FutureWarning)


def build_run(config, model_class: type):
    """(train data, valid set, test set, model, trainer) of one run of ``config``, built and
    seeded as :func:`run_recbole_music` builds them (so a bench that needs the model itself gets
    the numbers of the run's result): the split, the model seeded again after it, and the trainer
    with the protocol's evaluation. ``init_seed`` must have run for the split."""
    logger = logging.getLogger()
    sequential = is_sequential(model_class)
    data = (SequentialCrossDomainDataset if sequential else CrossDomainDataset)(config)
    logger.info(data)
    train_data, valid_set, test_set = prepare_data(config, data)

    init_seed(config["seed"], config["reproducibility"])
    model_obj = model_class(config, train_data._dataset).to(config["device"])
    logger.info(model_obj)
    if not predicts_ratings(model_obj) and config["valid_metric"].split("@")[0].lower() in (
        "mae",
        "rmse",
    ):
        # A ranking model has no MAE/RMSE to select on: select on full-ranking NDCG instead.
        config["valid_metric"] = f"NDCG@{config['topk'][0]}"
        config["valid_metric_bigger"] = True
        logger.info(
            f"{config['model']} ranks rather than rates: model selection on "
            f"{config['valid_metric']}"
        )
    if sequential:
        _check_sequential_valid_metric(config, logger)
    if getattr(data, "has_cold_items", False):
        scoring = unseen_item_scoring(model_obj)
        log = logger.info if getattr(model_obj, "unseen_item_scoring", None) else logger.warning
        log(f"{config['model']}: items unseen in training are scored from {scoring}")
    evaluation = with_sequential_evaluation if sequential else with_cold_start_evaluation
    trainer_class = evaluation(get_trainer(config["MODEL_TYPE"], config["model"]))
    trainer = trainer_class(config, model_obj)
    if sequential:
        trainer.use_objective(train_data._dataset)  # logged before training starts
    return train_data, valid_set, test_set, model_obj, trainer


def unseen_item_scoring(model) -> str:
    """What ``model`` scores an item unseen in training from (dual cold-start): its own way, or
    the evaluator's fallback for models that have none (RecBole's and the ID baselines)."""
    return getattr(model, "unseen_item_scoring", None) or UNSEEN_ITEM_FALLBACK


def run_recbole_music(
    model: str,
    dataset: str,
    config_file_list: list[str] | None = None,
    config_dict: dict | None = None,
    saved: bool = True,
    result_json: str | Path | None = None,
) -> dict:
    """Train ``model`` on ``dataset`` and evaluate it on the cold-start test users."""
    _quiet_known_recbole_warnings()
    model_class = resolve_model(model)
    data_root = _data_root(config_file_list, config_dict)
    folder = ensure_dataset(dataset, data_root)
    sequential = is_sequential(model_class)
    config = GroupConfig(  # RecBole's Config; a process of a --nproc group joins it here
        model=model_class,
        dataset=dataset,
        config_file_list=config_files(model, dataset, data_root, config_file_list),
        config_dict=config_dict,
    )
    if config["torch_threads"]:
        torch.set_num_threads(int(config["torch_threads"]))
    init_seed(config["seed"], config["reproducibility"])
    _init_run_logger(config)
    logger = logging.getLogger()
    build_info = read_build_info(folder)
    if build_info.get("generated"):
        logger.warning(
            set_color(
                f"NOTE: dataset '{dataset}' is GENERATED (synthetic) demo data, not real "
                f"reviews; its numbers show the pipeline works, not how models do on real data.",
                "red",
            )
        )
    logger.info(config)

    train_data, valid_set, test_set, model_obj, trainer = build_run(config, model_class)
    started = time.perf_counter()
    main_process = is_main_process(config)
    best_valid_score, best_valid_result = _fit(config, model, trainer, train_data, valid_set, saved)
    size_search = None
    if candidates := candidate_settings(model_obj, config, valid_set):
        first = TrainedCandidate(model_obj, trainer, best_valid_score, best_valid_result)
        best, size_search = _search_sizes(
            config, model, model_class, first, candidates, train_data, valid_set, saved
        )
        model_obj, trainer = best.model, best.trainer
        best_valid_score, best_valid_result = best.valid_score, best.valid_result
        if len(best.members) > 1:  # the selection's evaluations left each at its best epoch
            model_obj = ScoreAverage(
                [m.model for m in best.members], train_data._dataset.target_item_mask
            )
            if saved:  # one file holds every member: the new-user command reads it
                write_average_checkpoint([m.trainer.saved_model_file for m in best.members])
                for member in best.members[1:]:
                    os.remove(member.trainer.saved_model_file)
    trained = time.perf_counter()
    if is_distributed(config):
        check_processes_agree(model_obj, config)
    if not main_process:  # rank 0 holds the checkpoint and answers for the group
        return None
    if isinstance(model_obj, ScoreAverage):  # its members hold their best weights already
        test_result = trainer.evaluate_model(model_obj, test_set)
    else:
        test_result = trainer.evaluate(
            test_set, load_best_model=saved, show_progress=config["show_progress"]
        )
    evaluated = time.perf_counter()
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    logger.info("\n" + format_result_table(best_valid_result, test_result))

    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(best_valid_result or {}),
        "test_result": dict(test_result or {}),
        "run": {
            "model": model,
            "dataset": dataset,
            "generated_data": bool(build_info.get("generated", False)),
            "cold_ratio": config["cold_ratio"],
            "valid_ratio": config["valid_ratio"],
            "seed": config["seed"],
            "split_seed": config["split_seed"]
            if config["split_seed"] is not None
            else config["seed"],
            "cold_item_ratio": config["cold_item_ratio"],
            "unseen_items": unseen_item_scoring(model_obj)
            if getattr(train_data._dataset, "has_cold_items", False)
            else None,
            "valid_metric": config["valid_metric"],
            "model_selection": "best epoch on the validation users"
            if valid_set is not None
            else "last epoch (no validation users)",
            "conventions": {key: convention_of(key) for key in dict(test_result or {})},
            "seconds": {
                "training": round(trained - started, 3),  # validation epochs included
                "evaluation": round(evaluated - trained, 3),  # the test users
            },
            "best_epoch": getattr(trainer, "best_epoch", None),
            "stopped_by": trainer.stopped_by() if hasattr(trainer, "stopped_by") else None,
            "resumed_from_epoch": getattr(trainer, "resumed_from_epoch", None),
            "checkpoint": trainer.saved_model_file
            if saved and os.path.isfile(trainer.saved_model_file)
            else None,
            "settings_changed": changed_settings(config, model, dataset, data_root),
        },
    }
    if size_search is not None:
        result["run"]["size_search"] = size_search
    chosen = getattr(model_obj, "hyper", None)  # settings a model chose on validation users
    if chosen is not None:
        result["run"]["chosen_on_validation"] = {k: _plain(v) for k, v in chosen.items()}
    if sequential:
        result["run"]["protocol"] = (
            "sequential: leave-last-out for held-out overlapping users (their last target item), "
            f"MAX_ITEM_LIST_LENGTH={config['MAX_ITEM_LIST_LENGTH']}"
        )
        result["run"]["conventions"] = sequential_conventions(dict(test_result or {}))
        result["run"]["loss"] = trainer.objective.description
        n_target = int(train_data._dataset.target_item_mask[1:].sum())
        result["run"]["candidates"] = (
            f"{n_target} target items, the same for every model (auxiliary items and padding "
            "masked at evaluation)"
        )
    if result_json:
        write_json_atomic(result_payload(result), result_json)
    if not config["verbose"]:
        line = summary_line(model, result, config["valid_metric"], evaluated - started)
        print(line, flush=True)
    return result


def _search_sizes(config, model, model_class, first, candidates, train_data, valid_set, saved):
    """(the best candidate, the summary rows) of the size search (recbole_music/size_search.py):
    ``first`` is the run's own trained model; each candidate trains as a run of its own."""
    logger = logging.getLogger()

    def train_candidate() -> TrainedCandidate:
        # a fresh loader (its shuffling generator seeded anew) and the model seeded as
        # build_run seeds it: the candidate equals a run given these settings
        loader = get_dataloader(config, "train")(
            config, train_data._dataset, train_data._sampler, shuffle=config["shuffle"]
        )
        init_seed(config["seed"], config["reproducibility"])
        candidate = model_class(config, loader._dataset).to(config["device"])
        logger.info(candidate)
        trainer = type(first.trainer)(config, candidate)
        label = f"{model} ({', '.join(f'{k}={config[k]}' for k in candidates[0])})"
        score, result = _fit(config, label, trainer, loader, valid_set, saved)
        return TrainedCandidate(candidate, trainer, score, result)

    loaded: set[int] = set()  # candidates already at their best epoch

    def average(members: list[TrainedCandidate]) -> tuple[float, dict]:
        model = average_of(members, train_data._dataset, loaded)
        result = first.trainer.evaluate_model(model, valid_set)
        return calculate_valid_score(result, config["valid_metric"].lower()), result

    use_average = setting(config, "size_search_average")
    return search_sizes(
        first, candidates, config, train_candidate, average if use_average else None
    )


def average_of(members: list[TrainedCandidate], dataset, loaded: set) -> ScoreAverage:
    """The score average of the candidates' models, each at its best epoch (its checkpoint
    loaded unless its id is in ``loaded``, which then records it)."""
    for member in members:
        path = member.trainer.saved_model_file
        if (
            id(member) not in loaded
            and member.trainer.best_epoch is not None
            and os.path.isfile(path)
        ):
            member.trainer.load_checkpoint(path)
            loaded.add(id(member))
    return ScoreAverage([m.model for m in members], dataset.target_item_mask)


def _fit(config, label: str, trainer, train_data, valid_set, saved: bool):
    """``trainer.fit`` with the console's progress bar: (best valid score, best valid result)."""
    # quiet console: a bar over the epochs instead of RecBole's per-epoch log lines
    progress = EpochProgress(
        label,
        config["epochs"],
        config["valid_metric"],
        enabled=is_main_process(config) and not config["verbose"],
    )
    if is_distributed(config):  # each process its own negatives and noise, as RecBole seeds them
        rank = config["local_rank"] + config["offset"]
        init_seed(config["seed"] + rank, config["reproducibility"])
    # RecBole's tree-model trainers (XGBoost, LightGBM) take no callback
    takes_callback = "callback_fn" in inspect.signature(trainer.fit).parameters
    with progress:
        return trainer.fit(
            train_data,
            valid_set,
            saved=saved,
            show_progress=config["show_progress"],
            **({"callback_fn": progress.validated} if takes_callback else {}),
        )


def changed_settings(config, model: str, dataset: str, data_root: Path) -> dict:
    """The run's settings that differ from the defaults it would get with no user file, no
    ``config_dict`` and no command-line setting (RecBole's, the plugin's and the dataset's YAML),
    as plain data; settings the run itself changed (``valid_metric`` of a ranking model) count."""
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        defaults = Config(
            model=resolve_model(model),
            dataset=dataset,
            config_file_list=config_files(model, dataset, data_root),
        )
    default_values = plain_settings(defaults)
    return {
        key: value
        for key, value in plain_settings(config).items()
        if key not in default_values or default_values[key] != value
    }


def _check_sequential_valid_metric(config, logger) -> None:
    """Select on a metric the sequential evaluator computes (the dataset's YAML may name one
    of the cold-start protocol, e.g. NDCG@20 with topk [10])."""
    name, _, k = str(config["valid_metric"]).partition("@")
    metrics = [m.lower() for m in config["metrics"]]
    if name.lower() in metrics and k and int(k) in config["topk"]:
        return
    config["valid_metric"] = f"NDCG@{config['topk'][0]}"
    config["valid_metric_bigger"] = True
    logger.info(
        f"sequential evaluation computes no {name}@{k}: model selection on {config['valid_metric']}"
    )


def format_result_table(valid: dict | None, test: dict | None) -> str:
    valid, test = dict(valid or {}), dict(test or {})
    keys = list(test) + [k for k in valid if k not in test]
    rows = [("metric", "valid", "test", "convention")]
    for key in keys:
        rows.append((key, _fmt(valid.get(key)), _fmt(test.get(key)), convention_of(key)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"


def _plain(value):
    """A JSON-ready number (numpy scalars are not)."""
    return value.item() if hasattr(value, "item") else value


def result_payload(result: dict) -> dict:
    """The ``--result_json`` shape: ``{"valid": {...}, "test": {...}, "run": {...}}``."""
    return {
        "valid": result["best_valid_result"],
        "test": result["test_result"],
        "run": result["run"],
    }


def write_json_atomic(payload: dict, path: str | Path) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the results from others
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def format_comparison_table(
    results: dict[str, dict], notes: tuple[str, ...] | list[str] = ()
) -> str:
    """Test metrics of several models run on the same split, one row per model; ``notes``
    (e.g. one model's own settings) close the table."""
    keys: list[str] = []
    for result in results.values():
        keys += [k for k in result["test_result"] if k not in keys]
    rows = [("model", *keys)]
    for model, result in results.items():
        rows.append((model, *(_fmt(result["test_result"].get(k)) or "n/a" for k in keys)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if all(r["run"].get("protocol", "").startswith("sequential") for r in results.values()):
        conventions = [f"  all: {SEQUENTIAL_CONVENTION}"]
        return "test metrics (held-out users' last target item)\n" + "\n".join(
            lines + ["", *conventions, *(f"  {n}" for n in notes)]
        )
    conventions = [f"  {k}: {convention_of(k)}" for k in keys]
    return "test metrics (cold-start users)\n" + "\n".join(
        lines + ["", *conventions, *(f"  {n}" for n in notes)]
    )
