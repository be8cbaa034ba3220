"""Train and evaluate models on a cross-domain dataset by the cold-start protocol.

    python run_recbole_music.py --model=TargetMF --dataset=movie_music_demo
    python run_recbole_music.py --model=GlobalMean,ItemMean,TargetMF,BPR --dataset=movie_music_demo

Any recbole-music model or RecBole built-in model name works; several, comma-separated, run on
the same data, split and evaluator, and a side-by-side table closes the run. RecBole's own
``--key=value`` overrides (``--epochs=10``, ``--learning_rate=0.01``, ...) are passed through.
"""

from __future__ import annotations

import argparse
import sys

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
        default="movie_music_demo",
        help="dataset folder name under data_path (default: movie_music_demo, "
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
        "--result_json",
        default=None,
        help="write {valid, test} metrics as JSON here (one model) or "
        "{model: {valid, test}} (several)",
    )
    args, rest = parser.parse_known_args(argv)
    bad = [arg for arg in rest if not (arg.startswith("--") and "=" in arg)]
    if bad:
        parser.error(f"unrecognised arguments {bad}; RecBole overrides take the form --key=value")
    return args, rest


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, recbole_overrides = parse_args(argv)
    # RecBole's Config reads --key=value overrides from sys.argv itself; leave it only those.
    sys.argv = [sys.argv[0], *recbole_overrides]

    import recbole_music  # noqa: F401  (registers the plugin with RecBole)
    from dataset_prep.errors import DataError
    from recbole_music.quick_start import (
        DatasetNotFoundError,
        format_comparison_table,
        result_payload,
        run_recbole_music,
        write_json_atomic,
    )

    config_dict = {}
    if args.cold_ratio is not None:
        config_dict["cold_ratio"] = args.cold_ratio
    if args.seed is not None:
        config_dict["seed"] = args.seed
    user_files = args.config_files.split() if args.config_files else None
    models = [name.strip() for name in args.model.split(",") if name.strip()]

    results = {}
    try:
        for model in models:
            results[model] = run_recbole_music(
                model,
                args.dataset,
                config_file_list=user_files,
                config_dict=dict(config_dict),
                result_json=args.result_json if len(models) == 1 else None,
            )
    except (DatasetNotFoundError, DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if len(models) > 1:
        print("\n" + format_comparison_table(results))
        if args.result_json:
            write_json_atomic({m: result_payload(r) for m, r in results.items()}, args.result_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
