"""The comparison's vocabulary: model groups, tables, sweeps' default values, metrics per
feedback and their labels."""

from __future__ import annotations

from _grid import smaller_is_better

from dataset_prep.layout import DEMO_DATASET

FLOORS = ["GlobalMean", "ItemMean", "TargetMF", "Pop"]
BUILTINS = ["ItemKNN", "BPR", "NeuMF", "LightGCN"]
NEIGHBOURHOOD = ["ItemKNNTransfer", "UserKNNTransfer", "RidgeTransfer", "SVDTransfer"]
CDR_BASELINES = ["CMF", "EMCDR", "SSCDR", "LACDR", "PTUPCDR", "DiffCDR", "CATN", "OmniMatch"]
OURS = "MuSiC"
DEFAULT_MODELS = [*FLOORS, *BUILTINS, *NEIGHBOURHOOD, *CDR_BASELINES, OURS]
EXPLICIT_ONLY = {"GlobalMean"}  # predicts a rating, ranks nothing
REVIEW_BASED = {"CATN", "OmniMatch"}  # read the dataset's review text (<name>.review)
DEFAULT_TASKS = [DEMO_DATASET, "food_kitchen", "kitchen_food"]
TABLES = ["main", "ablation", "steps", "activation", "dual"]
DUAL_BETAS = [0.5]  # the paper's Table 4: β = 50 %
COLD_ITEM_RATIO = 0.2  # share of target items unseen in training (and as many for validation)
DEFAULT_STEPS = [2, 5, 10, 20, 50]
ACTIVATIONS = ["tanh", "relu", "sigmoid", "softmax"]  # the paper's Fig. 4
METRICS = {
    "explicit": ["mae", "rmse", "ratedndcg@20", "ndcg@20", "recall@20"],
    "implicit": ["ndcg@20", "recall@20"],
}
KEY_METRIC = {"explicit": "rmse", "implicit": "ndcg@20"}
METRIC_NAMES = {
    "mae": "MAE",
    "rmse": "RMSE",
    "ratedndcg@20": "rated NDCG@20",
    "ndcg@20": "NDCG@20",
    "recall@20": "Recall@20",
    "hit@20": "Hit@20",
}

TITLES = {
    "main": "Cold-start comparison (paper Table 2)",
    "ablation": "MuSiC ablations (paper Table 3)",
    "steps": "MuSiC vs diffusion steps T (paper Fig. 3)",
    "activation": "MuSiC vs activation (paper Fig. 4)",
    "dual": "Dual cold-start: cold-start users and items (paper Table 4)",
}


def metric_label(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric) + (" ↓" if smaller_is_better(metric) else " ↑")


def beta_label(beta: float) -> str:
    return f"β={beta * 100:g}%"
