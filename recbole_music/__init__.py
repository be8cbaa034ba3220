"""recbole-music: cold-start cross-domain recommendation (MuSiC) as a RecBole plugin.

Importing the package registers its models, trainers, dataset class and metrics with RecBole, so
``recbole.quick_start.run_recbole(model="TargetMF", dataset=..., config_file_list=
recbole_music.config_files("TargetMF", ...))`` works like for a built-in model. It also makes
RecBole's own ``Trainer`` save checkpoints that cannot run code (:mod:`recbole_music.checkpoint`).
"""

from recbole_music.checkpoint import install_in_recbole as _install_safe_checkpoints
from recbole_music.config import config_files
from recbole_music.registry import PLUGIN_MODELS, register_model
from recbole_music.registry import register_all as _register_all

_register_all()
_install_safe_checkpoints()  # RecBole's own Trainer saves checkpoints that cannot run code

__all__ = ["PLUGIN_MODELS", "config_files", "register_model"]
__version__ = "0.1.0"
