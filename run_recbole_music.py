"""Train and evaluate models on a cross-domain dataset by the cold-start protocol.

    python run_recbole_music.py --model=TargetMF --dataset=movie_music_demo
    python run_recbole_music.py --model=GlobalMean,ItemMean,TargetMF,BPR --dataset=movie_music_demo

Any recbole-music model or RecBole built-in model name works; several, comma-separated, run on
the same data, split and evaluator, and a side-by-side table closes the run. RecBole's own
``--key=value`` settings (``--epochs=10``, ``--learning_rate=0.01``, ...) apply to every model;
``--model-arg MuSiC:learning_rate=0.01`` to one. Names and value types are checked before
anything trains: a misspelt name is an error that suggests the closest known ones.

    python run_recbole_music.py --model=TargetMF,MuSiC --model-arg MuSiC:ema_decay=0

``--nproc=N`` trains on N processes of this machine through RecBole's DDP (one per GPU, or per
CPU core without GPUs; ``--world_size``, ``--ip``, ``--port``, ``--group_offset`` span machines,
as RecBole's ``run_recbole.py``): docs/scaling.md.

The console shows a progress bar per model (a plain line now and then off a terminal), a summary
line per model and the table, last; RecBole's full output goes to the log file in ``log/``, and
to the console too with ``--verbose``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import recbole_music  # noqa: F401  (registers the plugin with RecBole)
from dataset_prep.errors import DataError
from dataset_prep.layout import DEMO_DATASET
from recbole_music.config import PROPERTIES_DIR
from recbole_music.distributed import ProcessGroupSpec, run_on_processes
from recbole_music.quick_start import (
    DatasetNotFoundError,
    format_comparison_table,
    format_result_table,
    resolve_model,
    result_payload,
    run_recbole_music,
    write_json_atomic,
)
from recbole_music.settings import (
    SettingsError,
    check_settings,
    known_settings,
    parse_model_arg,
    read_yaml,
    split_setting,
)

DEFAULT_MODEL = "TargetMF"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        "-m",
        default=DEFAULT_MODEL,
        help=f"model name(s), comma-separated (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--dataset",
        "-d",
        default=DEMO_DATASET,
        help=f"dataset folder name under data_path (default: {DEMO_DATASET}, "
        "generated on first use)",
    )
    parser.add_argument(
        "--config_files", default=None, help="extra YAML config files, space-separated"
    )
    parser.add_argument(
        "--cold_ratio",
        type=float,
        default=None,
        help="β: share of overlapping users held out as cold-start test users (default 0.2)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (split and model)")
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="MODEL:KEY=VALUE",
        help="a setting for one model only (repeatable), e.g. MuSiC:learning_rate=0.01; "
        "the other models keep theirs",
    )
    parser.add_argument(
        "--verbose",
        nargs="?",
        const="True",
        default=None,
        help="RecBole's console output (configuration dump, dataset and model, every epoch) "
        "instead of a progress bar and a summary line per model; the log file in log/ always "
        "has it",
    )
    group = parser.add_argument_group("several processes (RecBole's DDP; docs/scaling.md)")
    group.add_argument("--nproc", type=int, default=1, help="processes on this machine (default 1)")
    group.add_argument(
        "--world_size", type=int, default=-1, help="processes on all machines (default: nproc)"
    )
    group.add_argument("--ip", default="localhost", help="address of the machine of rank 0")
    group.add_argument("--port", type=int, default=5678, help="its free TCP port (default 5678)")
    group.add_argument(
        "--group_offset", type=int, default=0, help="the first rank of this machine (default 0)"
    )
    parser.add_argument(
        "--result_json",
        default=None,
        help="write {valid, test} metrics as JSON here (one model) or "
        "{model: {valid, test}} (several)",
    )
    args, rest = parser.parse_known_args(argv)
    bad = [arg for arg in rest if not (arg.startswith("--") and "=" in arg)]
    if bad:
        parser.error(f"unrecognised arguments {bad}; RecBole overrides take the form --key=value")
    args.settings = dict(split_setting(arg[2:]) for arg in rest)
    if args.verbose is not None:  # a plugin setting like any other, checked with them
        args.settings["verbose"] = args.verbose
    args.model_settings = {}
    for spec in args.model_arg:
        try:
            model, key, value = parse_model_arg(spec)
        except ValueError as error:
            parser.error(f"--model-arg {error}")
        args.model_settings.setdefault(model, {})[key] = value
    return args


PLUGIN_ROOT = PROPERTIES_DIR.parent  # where properties/ lives


def config_file_paths(config_files: str | None) -> list[str]:
    """``--config_files``' paths; one that is not there relative to the working directory but is
    relative to the plugin's folder (``properties/model/MuSiC-paper.yaml``) is taken from there,
    so the plugin's own files work from anywhere."""
    paths = []
    for path in (config_files or "").split():
        plugin_copy = PLUGIN_ROOT / path
        use_plugin = not Path(path).is_absolute() and not Path(path).exists()
        paths.append(str(plugin_copy) if use_plugin and plugin_copy.is_file() else path)
    return paths


def plan_runs(args) -> list[tuple[str, dict]]:
    """(model, config_dict) of each run, every name, value and file checked before any trains."""
    models = [name.strip() for name in args.model.split(",") if name.strip()]
    if not models:
        raise SettingsError("--model: give at least one model name")
    for model in models:
        resolve_model(model)  # an unknown name is a ValueError before anything trains
    strays = sorted(set(args.model_settings) - set(models))
    if strays:
        raise SettingsError(f"--model-arg for {strays}, which --model does not run ({models})")
    user_files = config_file_paths(args.config_files)
    for path in user_files:
        read_yaml(path)  # exists, is YAML
    known = known_settings(user_files)
    shared = check_settings(args.settings, known)
    base = {}
    if args.cold_ratio is not None:
        base["cold_ratio"] = args.cold_ratio
    if args.seed is not None:
        base["seed"] = args.seed
    runs = []
    for model in models:
        own = check_settings(
            args.model_settings.get(model, {}), known, flag=f"--model-arg {model}:"
        )
        runs.append((model, {**base, **shared, **own}))
    return runs


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    # RecBole's Config reads --key=value overrides from sys.argv itself: they reach it checked
    # and typed through config_dict instead, so leave it none.
    sys.argv = sys.argv[:1]

    user_files = config_file_paths(args.config_files) or None
    group = ProcessGroupSpec(args.nproc, args.world_size, args.ip, args.port, args.group_offset)
    results = {}
    try:
        runs = plan_runs(args)
        for model, config_dict in runs:
            common = {
                "config_file_list": user_files,
                "config_dict": config_dict,
                "result_json": args.result_json if len(runs) == 1 else None,
            }
            if group.active:
                results[model] = run_on_processes(model, args.dataset, group, **common)
            else:
                results[model] = run_recbole_music(model, args.dataset, **common)
    except (DatasetNotFoundError, DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if any(result is None for result in results.values()):  # a machine without rank 0
        print("this machine's processes finished; the machine of rank 0 reports the result")
        return 0
    if len(runs) == 1:
        (model, config_dict), result = runs[0], results[runs[0][0]]
        if not config_dict.get("verbose"):  # verbose: RecBole's log already showed the table
            print("\n" + format_result_table(result["best_valid_result"], result["test_result"]))
    else:
        notes = [
            f"{model} alone: " + ", ".join(f"{k}={v}" for k, v in settings.items())
            for model, settings in args.model_settings.items()
        ]
        print("\n" + format_comparison_table(results, notes))
        if args.result_json:
            write_json_atomic({m: result_payload(r) for m, r in results.items()}, args.result_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
