"""The plan: which cells (task, model, β, seed, overrides) each table needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from _grid import (
    ROOT,
    Cell,
)

from .catalogue import OURS
from .tasks import Task


@dataclass
class Entry:
    table: str  # main | ablation | steps | activation
    row: str
    beta: float
    seed: int
    cell: Cell


def music_variants(task: Task, with_fused: bool = False) -> list[tuple[str, tuple[str, ...]]]:
    """The ablation rows (paper Table 3) of ``task`` as (label, overrides); see
    :func:`_variants`."""
    return _variants(task.has_features, task.feedback == "explicit", with_fused)


def variant_labels(with_fused: bool = False) -> list[str]:
    """Every ablation row's label, whatever the data (the choices of ``--variants``)."""
    rows = [_variants(f, e, with_fused) for f in (True, False) for e in (True, False)]
    return list(dict.fromkeys(label for variants in rows for label, _ in variants))


def names_variant(word: str, label: str) -> bool:
    """``--variants``' rule: a word names a row when its label contains it, case-insensitive."""
    return word.lower() in label.lower()


ID_EMBEDDINGS = "--feature_source=collaborative"  # the rows that replace the vectors


def selected_variants(variants, wanted) -> list[tuple[str, tuple[str, ...]]]:
    """The full model and the rows whose label contains one of ``wanted`` (case-insensitive;
    every row when ``wanted`` is empty): ``--variants`` runs some rows of the table only."""
    if not wanted:
        return variants
    picked = [v for v in variants[1:] if any(names_variant(w, v[0]) for w in wanted)]
    return [variants[0], *picked]


def _variants(
    has_features: bool, explicit: bool, with_fused: bool
) -> list[tuple[str, tuple[str, ...]]]:
    """The ablation rows as (label, overrides); the full model first; ``with_fused`` adds MuSiC
    on the fused feature source (multimodal + ID embeddings).

    The full model is what MuSiC's defaults run (``feature_source: auto``): the multimodal
    vectors on explicit data with content tables (written out, as the paper's), the item vectors
    from the training interactions on implicit data or without content tables; ID embeddings
    are the row that replaces them, and on implicit data with content tables the content vectors
    are a row of their own."""
    if has_features and explicit:
        full = ("--feature_source=multimodal",)
        fused = [("fused features", ("--feature_source=fused",))] if with_fused else []
        return [
            ("MuSiC (full)", full),
            ("w/o MLLM", (ID_EMBEDDINGS,)),
            *fused,
            *_without_diffusion(full),
            ("w/o side", (*full, "--use_side_users=False")),
        ]
    full: tuple[str, ...] = ()
    content = (
        [("content vectors instead (the paper's features)", ("--feature_source=multimodal",))]
        if has_features
        else []
    )
    return [
        ("MuSiC (full, interaction vectors)", full),
        ("w/o interaction vectors (ID embeddings)", (ID_EMBEDDINGS,)),
        *content,
        *_without_diffusion(full),
        ("w/o side", (*full, "--use_side_users=False")),
    ]


def _without_diffusion(full: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """The paper's w/o diffusion (``u_A`` stands in for ``u_T``, no mapping learnt) and ours,
    a stronger one: ``u_A`` trained on the overlapping users' target ratings."""
    off = (*full, "--use_diffusion=False")
    return [("w/o diffusion", off), ("direct transfer (ours)", (*off, "--direct_transfer=True"))]


# MuSiC as the paper defines it (properties/model/MuSiC-paper.yaml over the defaults), a row of
# the main and dual tables; relative to the runs' working directory, the repository
PAPER_CONFIG = "properties/model/MuSiC-paper.yaml"
PAPER_ROW = "MuSiC (paper)"


def music_defaults() -> dict:
    """MuSiC's defaults (properties/model/MuSiC.yaml); empty when unreadable."""
    import yaml

    try:
        return yaml.safe_load((ROOT / "properties" / "model" / "MuSiC.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


# The sweeps (Fig. 3 and 4): table -> (MuSiC setting, the args attribute of its values, row label)
SWEEPS = {
    "steps": ("diffusion_steps", "steps", "T = {}"),
    "activation": ("activation", "activations", "{}"),
}


def sweep_rows(table: str, args, defaults: dict) -> list[tuple[str, tuple[str, ...]]]:
    """(row label, overrides) per value of a sweep; the default value adds no override, so it
    is the full model's own cell."""
    key, attribute, label = SWEEPS[table]
    return [
        (label.format(v), () if str(v) == str(defaults.get(key)) else (f"--{key}={v}",))
        for v in getattr(args, attribute)
    ]


def chosen_settings(run: dict) -> dict:
    """The settings a run's size search chose; {} when it searched nothing."""
    candidates = run.get("size_search") or []
    return next((c["settings"] for c in candidates if c.get("chosen")), None) or {}


def settings_text(settings: dict) -> str:
    return ";".join(f"{key}={value}" for key, value in settings.items())


def settings_of_text(text: str) -> dict:
    """The inverse of :func:`settings_text` (integers back as integers)."""
    pairs = (item.split("=", 1) for item in text.split(";") if "=" in item)
    return {key: int(value) if value.lstrip("-").isdigit() else value for key, value in pairs}


SIZES_FIXED = "--interaction_size_search=[]"  # a variant of the full model searches no sizes
# settings of the users' history vectors, which ID embeddings do not have (MuSiC refuses a
# history_dropout there)
HISTORY_SETTINGS = ("--history_vector_scale=", "--history_dropout=")


AVERAGE_SETTING = "size_search_average"
BEST_CANDIDATE_ROW = "MuSiC (best candidate)"  # the main and dual tables' optional row
SINGLE_MODEL = f"--{AVERAGE_SETTING}=False"  # a search that keeps its best candidate alone


def averages(cell: Cell) -> bool:
    """Whether the cell's size search averages its candidates (``size_search_average``): its
    own override when it has one, else MuSiC's default."""
    from recbole_music.settings import parse_value

    for override in reversed(cell.overrides):
        if override.startswith(f"--{AVERAGE_SETTING}="):
            return bool(parse_value(override.split("=", 1)[1]))
    return bool(music_defaults().get(AVERAGE_SETTING))


def searches_sizes(cell: Cell) -> bool:
    """A MuSiC cell that runs its size search: not a variant trained at fixed sizes, not the
    paper's configuration."""
    return cell.model == OURS and not any(
        o == SIZES_FIXED or o == f"--config_files={PAPER_CONFIG}" for o in cell.overrides
    )


def variant_sizes(overrides: tuple[str, ...], sizes: tuple[str, ...]) -> tuple[str, ...]:
    """The full model's chosen settings for one variant: a variant on ID embeddings takes its
    sizes but not the history-vector settings."""
    if ID_EMBEDDINGS not in overrides:
        return sizes
    return tuple(s for s in sizes if not s.startswith(HISTORY_SETTINGS))


def chosen_size_overrides(result: dict | None) -> tuple[str, ...] | None:
    """The overrides that train a variant of the full model at the sizes the full model's own
    size search chose on the validation users (its result's ``run.size_search``), with no search
    of its own; () when the full model searched nothing (content vectors), None when its cell
    has not run yet. Ablating one part then changes that part alone, and each variant costs one
    training instead of one per candidate."""
    if result is None:
        return None
    chosen = chosen_settings(result.get("run") or {})
    return fixed_size_overrides(chosen) if chosen else ()


def fixed_size_overrides(settings: dict) -> tuple[str, ...]:
    """The overrides of one run at ``settings`` with no size search of its own."""
    return (SIZES_FIXED, *(f"--{k}={v}" for k, v in settings.items()))


def model_overrides(model: str, args) -> tuple[str, ...]:
    """Every cell's extra overrides: --epochs (MuSiC: both stages), the user's own, then the
    ones ``--model-arg`` gives this model alone."""
    extra: list[str] = []
    if args.epochs is not None:
        extra.append(f"--epochs={args.epochs}")
        if model == OURS:
            extra.append(f"--stage1_epochs={args.epochs}")
    own = tuple(f"--{kv}" for name, kv in args.model_args if name == model)
    return (*extra, *args.overrides, *own)


def plan(
    task: Task,
    models: list[str],
    args,
    result_of: Callable[[Cell], dict | None] = lambda cell: None,
) -> tuple[list[Entry], int]:
    """Every table's entries, β by β and seed by seed (so a partial grid is a complete
    comparison of its first splits); a cell several tables need is one entry per table.

    The variants of the full model (ablation, sweeps) train at the sizes its cell chose
    (:func:`chosen_size_overrides`, the full cell's result read by ``result_of``); a variant
    whose full cell has not run yet is left out and counted: the second number returned."""
    entries: list[Entry] = []
    waiting = 0
    variants = music_variants(task, args.with_fused)
    full = variants[0][1]
    variants = selected_variants(variants, args.variants)
    music_extra = model_overrides(OURS, args)
    defaults = music_defaults()
    # the ablation and the sweeps compare single models: where the default search averages its
    # candidates, their full model keeps its best candidate alone (what each variant changes
    # one part of); the main table's MuSiC is the default, averaged
    single = (
        (SINGLE_MODEL,)
        if defaults.get(AVERAGE_SETTING) and "--feature_source=multimodal" not in full
        else ()
    )
    sweeps = {t: sweep_rows(t, args, defaults) for t in SWEEPS if t in args.tables}
    # the tables of every model: (table, its β values, the overrides it adds)
    model_tables = [
        ("main", args.betas, ()),
        ("dual", args.dual_betas, (f"--cold_item_ratio={args.cold_item_ratio}",)),
    ]
    for beta in dict.fromkeys([*args.betas, *args.steps_betas, *args.dual_betas]):
        for seed in args.seeds:
            for table, betas, extra in model_tables:
                if table not in args.tables or beta not in betas:
                    continue
                for model in models:
                    own = full if model == OURS else ()
                    overrides = (*own, *extra, *model_overrides(model, args))
                    cell = Cell(task.name, model, beta, seed, overrides)
                    entries.append(Entry(table, model, beta, seed, cell))
                if OURS in models and args.paper_row:  # the paper's MuSiC: our additions off
                    overrides = (f"--config_files={PAPER_CONFIG}", *extra, *music_extra)
                    cell = Cell(task.name, OURS, beta, seed, overrides)
                    entries.append(Entry(table, PAPER_ROW, beta, seed, cell))
                if OURS in models and args.best_candidate_row:
                    overrides = (*full, SINGLE_MODEL, *extra, *music_extra)
                    cell = Cell(task.name, OURS, beta, seed, overrides)
                    entries.append(Entry(table, BEST_CANDIDATE_ROW, beta, seed, cell))
            full_cell = Cell(task.name, OURS, beta, seed, (*full, *single, *music_extra))
            sizes = chosen_size_overrides(result_of(full_cell))
            rows = []
            if "ablation" in args.tables and beta in args.betas:
                rows += [("ablation", label, overrides) for label, overrides in variants]
            if beta in args.steps_betas:
                rows += [
                    (t, label, (*full, *own)) for t, sweep in sweeps.items() for label, own in sweep
                ]
            for table, label, overrides in rows:
                if tuple(overrides) == tuple(full):
                    cell = full_cell
                elif sizes is None:
                    waiting += 1
                    continue
                else:
                    sized = (*overrides, *variant_sizes(overrides, sizes))
                    cell = Cell(task.name, OURS, beta, seed, (*sized, *music_extra))
                entries.append(Entry(table, label, beta, seed, cell))
    return entries, waiting
