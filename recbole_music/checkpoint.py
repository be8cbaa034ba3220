"""Checkpoints that cannot run code: tensors, numbers and a plain settings dict, nothing pickled.

RecBole 1.2.1 saves its whole ``Config`` object into each ``.pth`` and reloads it with
``torch.load``, which unpickles it: a shared or downloaded checkpoint could then run any code it
likes while loading. Checkpoints written here hold only what ``torch.load(weights_only=True)``
accepts — the model's state dict, the optimizer's, a few numbers and the run's settings as a
JSON-able dict — and every load in the plugin uses ``weights_only=True``. A file that needs more
(RecBole's own format, an old recbole-music checkpoint, anything foreign) is refused with
:class:`CheckpointError`; nothing in it runs.

:func:`install_in_recbole` makes RecBole's own ``Trainer`` (and every trainer derived from it)
save this format too, so plain ``recbole.quick_start.run_recbole`` keeps reloading its best
epoch under torch >= 2.6, whose ``torch.load`` refuses RecBole's pickled checkpoints.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import scipy.sparse as sp
import torch

FORMAT = "recbole-music-checkpoint/1"

# Settings RecBole's Config derives itself (from the model class, the dataset name, the device):
# a rebuilt Config computes them again instead of being handed the saved values.
DERIVED_SETTINGS = frozenset(
    {
        "model",
        "dataset",
        "data_path",
        "MODEL_TYPE",
        "MODEL_INPUT_TYPE",
        "eval_type",
        "device",
        "single_spec",
        "local_rank",
        "valid_neg_sample_args",
        "test_neg_sample_args",
    }
)

# Settings added with a default that changes what a trained model does, by model: a checkpoint
# written before one of them gets the value that keeps its behaviour, not the new default.
BEHAVIOUR_BEFORE_SETTING = {"MuSiC": {"rating_clip": False}}


# A score average's checkpoint (size_search_average): its members after the first, whose
# checkpoint the file otherwise is.
AVERAGE_MEMBERS = "average_members"


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable or not in the safe format."""


# -- settings ----------------------------------------------------------------------------------
def plain_settings(config) -> dict:
    """The run's settings as a JSON-able dict: every setting whose value is plain data (enums,
    devices and classes are left out; RecBole's Config derives them again)."""
    settings = {}
    for key, value in config.final_config_dict.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        settings[key] = value
    return settings


def config_from_checkpoint(checkpoint: dict, model_class: type):
    """RecBole's ``Config`` of the run that wrote ``checkpoint``, on the CPU. A setting the
    checkpoint does not hold (one added to the plugin after it was written) takes its default
    from the model's YAML layers, where that default keeps the behaviour from before it, else
    its value in ``BEHAVIOUR_BEFORE_SETTING``."""
    from recbole.config import Config

    from recbole_music.config import config_files

    saved = checkpoint["config"]
    settings = {k: v for k, v in saved.items() if k not in DERIVED_SETTINGS}
    for key, value in BEHAVIOUR_BEFORE_SETTING.get(saved.get("model"), {}).items():
        settings.setdefault(key, value)
    # Config appends the dataset's name to data_path: hand it the folder above.
    settings["data_path"] = os.path.dirname(os.path.normpath(saved["data_path"]))
    settings["use_gpu"] = False
    negatives = settings.get("train_neg_sample_args")
    if isinstance(negatives, dict) and negatives.get("distribution") == "none":
        settings["train_neg_sample_args"] = None  # Config's own spelling of "no sampling"
    # The YAML layers only fill in settings the checkpoint lacks (config_dict wins over files).
    layers = config_files(model_class, saved["dataset"], settings["data_path"])
    # Config reads --key=value overrides from sys.argv: the saved settings are the whole truth.
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        config = Config(
            model=model_class,
            dataset=saved["dataset"],
            config_file_list=layers,
            config_dict=settings,
        )
    config["device"] = torch.device("cpu")
    return config


# -- model parameters that are not tensors ------------------------------------------------------
def _plain_parameter(value):
    """A model's ``other_parameter`` value in a form ``weights_only`` loads (tensors stay)."""
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if value is None or isinstance(value, (torch.Tensor, bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if sp.issparse(value):
        csr = sp.csr_matrix(value)
        return {
            "__csr_matrix__": {
                "data": torch.from_numpy(csr.data),
                "indices": torch.from_numpy(csr.indices),
                "indptr": torch.from_numpy(csr.indptr),
                "shape": list(csr.shape),
            }
        }
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _plain_parameter(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"__list__": [_plain_parameter(v) for v in value]}
    raise CheckpointError(
        f"cannot store a model parameter of type {type(value).__name__} in a safe checkpoint"
    )


def _restored_parameter(value):
    if isinstance(value, dict) and "__dict__" in value:
        return {k: _restored_parameter(v) for k, v in value["__dict__"].items()}
    if isinstance(value, dict) and "__list__" in value:
        return [_restored_parameter(v) for v in value["__list__"]]
    if isinstance(value, dict) and "__ndarray__" in value:
        return value["__ndarray__"].numpy()
    if isinstance(value, dict) and "__csr_matrix__" in value:
        parts = value["__csr_matrix__"]
        arrays = (parts["data"].numpy(), parts["indices"].numpy(), parts["indptr"].numpy())
        return sp.csr_matrix(arrays, shape=tuple(parts["shape"]))
    return value


# -- save and load -------------------------------------------------------------------------------
def checkpoint_state(trainer, epoch: int) -> dict:
    """What a trainer's checkpoint holds (the keys RecBole's own checkpoints have)."""
    other = trainer.model.other_parameter() or {}
    best = trainer.best_valid_score
    return {
        "format": FORMAT,
        "config": plain_settings(trainer.config),
        "epoch": int(epoch),
        "cur_step": int(trainer.cur_step),
        "best_valid_score": float(best) if best is not None else None,
        "state_dict": trainer.model.state_dict(),
        "other_parameter": {k: _plain_parameter(v) for k, v in other.items()},
        "optimizer": trainer.optimizer.state_dict(),
    }


def write_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Save ``state`` through a temporary file and ``os.replace``: an interrupted save leaves
    the previous file at ``path`` whole."""
    partial = f"{path}.partial-{os.getpid()}"
    try:
        torch.save(state, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def read_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """A checkpoint in the safe format, loaded with ``weights_only=True``; anything else is a
    :class:`CheckpointError` and nothing in the file runs."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {path} {what}")
    try:
        checkpoint = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001  (torch raises several kinds; none may escape)
        reason = _load_failure_reason(error)
        raise CheckpointError(
            f"checkpoint {path} refused: it is not a safe recbole-music checkpoint (tensors and "
            "plain settings only). It may be RecBole's own format, an older recbole-music "
            "checkpoint or a foreign file that pickles Python objects, and unpickling such a "
            "file can run arbitrary code, so it is not loaded. Train the model again to get a "
            f"safe checkpoint. (torch: {reason})"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} refused: it holds no '{FORMAT}' marker, so it was not written "
            "by recbole-music's trainers. Train the model again to get one."
        )
    for part in (checkpoint, *checkpoint.get(AVERAGE_MEMBERS, [])):
        part["other_parameter"] = {
            k: _restored_parameter(v) for k, v in (part.get("other_parameter") or {}).items()
        }
    return checkpoint


def write_average_checkpoint(member_files: list[str]) -> None:
    """Fold the checkpoints of a score average's members (best first) into the first file: it
    stays the best member's checkpoint (anything that loads one model loads that one), and
    ``AVERAGE_MEMBERS`` lists the others' settings and weights, in order."""
    first = read_checkpoint(member_files[0])
    first[AVERAGE_MEMBERS] = []
    for path in member_files[1:]:
        member = read_checkpoint(path)
        first[AVERAGE_MEMBERS].append(
            {
                "config": member["config"],
                "state_dict": member["state_dict"],
                "other_parameter": {
                    k: _plain_parameter(v) for k, v in member["other_parameter"].items()
                },
            }
        )
    first["other_parameter"] = {k: _plain_parameter(v) for k, v in first["other_parameter"].items()}
    write_checkpoint(first, member_files[0])


def _load_failure_reason(error: Exception) -> str:
    """The informative line of torch's message (which global it refused), else its first."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "Unsupported" in line:  # "WeightsUnpickler error: Unsupported global: GLOBAL os.system"
            return line.split(" was not an allowed")[0]  # not torch's hint to allow-list it
    return lines[0] if lines else repr(error)


# -- RecBole's own Trainer --------------------------------------------------------------------------
def _recbole_trainer_save_checkpoint(self, epoch, verbose=True, **kwargs):
    """``recbole.trainer.Trainer._save_checkpoint`` writing the safe format, atomically."""
    if not self.config["single_spec"] and self.config["local_rank"] != 0:
        return
    saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
    write_checkpoint(checkpoint_state(self, epoch), saved_model_file)
    if verbose:
        from recbole.utils import set_color

        self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")


def install_in_recbole() -> None:
    """RecBole's ``Trainer`` (and the trainers derived from it) save safe checkpoints. Its own
    ``evaluate(load_best_model=True)`` and ``resume_checkpoint`` then load them with torch's
    default ``weights_only=True``, which refuses RecBole's original, pickled format."""
    from recbole.trainer.trainer import Trainer

    Trainer._save_checkpoint = _recbole_trainer_save_checkpoint
