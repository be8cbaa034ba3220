"""MuSiC: the model (model.py), where its features come from (features.py, with
interaction_vectors.py and user_history_vectors.py), and the projection MLP (projection.py).
Its staged trainer is recbole_music/trainer/music_trainer.py; the diffusion is
recbole_music/diffusion/."""

from recbole_music.model.music.model import MuSiC

__all__ = ["MuSiC"]
