"""Make the plugin's models, trainers, dataset and metrics visible to RecBole by name.

RecBole 1.2.1 looks a model up as ``recbole.model.<kind>_recommender.<name lower>``, a trainer as
``recbole.trainer.<Model>Trainer`` and a dataset class as ``recbole.data.dataset.<Model>Dataset``.
Registering a model puts an alias of its module in ``sys.modules`` and the two classes on those
modules, so ``recbole.quick_start.run_recbole(model="TargetMF", ...)`` finds all three.
"""

from __future__ import annotations

import sys

import recbole.data.dataset
import recbole.trainer
from recbole.trainer import TraditionalTrainer, Trainer
from recbole.utils import ModelType

from recbole_music.data.dataset import CrossDomainDataset
from recbole_music.data.sequence_dataset import SequentialCrossDomainDataset
from recbole_music.evaluation.metrics import register_metrics
from recbole_music.model.baselines import CATN, CMF, MAPPING_BASELINES, OmniMatch
from recbole_music.model.global_mean import GlobalMean
from recbole_music.model.item_mean import ItemMean
from recbole_music.model.llmemf import LLMEMF
from recbole_music.model.music import MuSiC
from recbole_music.model.neighbourhood import NEIGHBOURHOOD_MODELS
from recbole_music.model.neumf import NeuMF
from recbole_music.model.target_mf import TargetMF
from recbole_music.trainer.cold_start_trainer import with_cold_start_evaluation
from recbole_music.trainer.exact_pop_trainer import ExactPopTrainer
from recbole_music.trainer.hyper_search_trainer import HyperSearchTrainer
from recbole_music.trainer.mapping_trainer import MappingTrainer
from recbole_music.trainer.music_trainer import MuSiCTrainer
from recbole_music.trainer.sequential_trainer import SequentialCrossDomainTrainer
from recbole_music.trainer.user_batch_trainer import UserBatchTrainer

PLUGIN_MODELS: dict[str, type] = {}


def register_model(
    model_class: type, trainer_class: type | None = None, dataset_class: type | None = None
) -> None:
    """Register one model class (and optionally its own trainer and dataset class) with RecBole.

    A sequential model (``type == ModelType.SEQUENTIAL``) is aliased under
    ``recbole.model.sequential_recommender``; ``dataset_class`` defaults to CrossDomainDataset."""
    name = model_class.__name__
    kind = "sequential" if model_class.type == ModelType.SEQUENTIAL else "general"
    alias = f"recbole.model.{kind}_recommender.{name.lower()}"
    sys.modules[alias] = sys.modules[model_class.__module__]
    if trainer_class is None:
        base = TraditionalTrainer if model_class.type == ModelType.TRADITIONAL else Trainer
        trainer_class = with_cold_start_evaluation(base)
    setattr(recbole.trainer, f"{name}Trainer", trainer_class)
    setattr(recbole.data.dataset, f"{name}Dataset", dataset_class or CrossDomainDataset)
    PLUGIN_MODELS[name] = model_class


def register_all() -> None:
    """Register every model the plugin ships, with its trainer and dataset class, and the
    plugin's metrics."""
    register_metrics()
    for model_class in (GlobalMean, ItemMean, TargetMF):
        register_model(model_class)
    register_model(MuSiC, MuSiCTrainer)
    register_model(CMF)
    register_model(CATN, UserBatchTrainer)
    register_model(OmniMatch, UserBatchTrainer)
    for model_class in MAPPING_BASELINES:
        register_model(model_class, MappingTrainer)
    register_model(LLMEMF, SequentialCrossDomainTrainer, SequentialCrossDomainDataset)
    for model_class in NEIGHBOURHOOD_MODELS:
        register_model(model_class, HyperSearchTrainer)
    # RecBole's own Pop, with exact counts (its calculate_loss undercounts): not a plugin model,
    # only its trainer is replaced
    recbole.trainer.PopTrainer = with_cold_start_evaluation(ExactPopTrainer)
    # RecBole's own NeuMF with a full-ranking scorer (same model, same checkpoints): not a plugin
    # model either, only the module RecBole's get_model imports it from is replaced
    sys.modules["recbole.model.general_recommender.neumf"] = sys.modules[NeuMF.__module__]
