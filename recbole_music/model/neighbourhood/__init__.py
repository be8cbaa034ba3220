"""Neighbourhood transfer baselines for cold-start users (docs/baselines.md): closed-form models
that link auxiliary to target items through the training users active in both domains, with
hyper-parameters chosen on validation users by :class:`recbole_music.trainer.hyper_search_trainer.HyperSearchTrainer`."""

from recbole_music.model.neighbourhood.item_knn import ItemKNNTransfer
from recbole_music.model.neighbourhood.ridge import RidgeTransfer
from recbole_music.model.neighbourhood.svd import SVDTransfer
from recbole_music.model.neighbourhood.user_knn import UserKNNTransfer

NEIGHBOURHOOD_MODELS = (ItemKNNTransfer, UserKNNTransfer, RidgeTransfer, SVDTransfer)

__all__ = [
    "NEIGHBOURHOOD_MODELS",
    "ItemKNNTransfer",
    "RidgeTransfer",
    "SVDTransfer",
    "UserKNNTransfer",
]
