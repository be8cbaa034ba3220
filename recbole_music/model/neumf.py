"""RecBole's NeuMF with a full-ranking scorer: the same model, scored faster.

RecBole's NeuMF has no ``full_sort_predict``, so a full ranking sends every user–item pair
through its MLP, and on a catalogue of tens of thousands of items evaluation takes almost all of
an epoch. The MLP's first layer is linear in the concatenation ``[user; item]``, so it splits into
a user part and an item part computed once each; only the layers after it run per pair. The
scores equal ``predict``'s up to float rounding (tested); training, parameters and checkpoints
are RecBole's own.
"""

from __future__ import annotations

import torch
from recbole.model.general_recommender.neumf import NeuMF as RecBoleNeuMF
from torch import nn

PAIRS_PER_CHUNK = 1 << 16  # pairs per step: larger [users, items, width] tensors leave the cache


class NeuMF(RecBoleNeuMF):
    def full_sort_predict(self, interaction):
        layers = list(self.mlp_layers.mlp_layers)
        first = next((i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear)), None)
        if not (self.mf_train and self.mlp_train) or first is None or self.training:
            raise NotImplementedError  # the evaluator falls back to predict on each pair
        if any(isinstance(layer, nn.modules.batchnorm._BatchNorm) for layer in layers):
            raise NotImplementedError  # batch norm over [users, items, width] would differ
        users = interaction[self.USER_ID]
        first_linear = layers[first]
        user_width = self.mlp_embedding_size
        user_weight = first_linear.weight[:, :user_width]
        item_weight = first_linear.weight[:, user_width:]
        user_part = self.user_mlp_embedding(users) @ user_weight.T  # [users, hidden]
        item_part = self.item_mlp_embedding.weight @ item_weight.T + first_linear.bias  # [items, h]
        after_first = nn.Sequential(*layers[first + 1 :])  # dropout is off in eval mode

        mf_size = self.mf_embedding_size
        mf_weight = self.predict_layer.weight[0, :mf_size]
        mlp_weight = self.predict_layer.weight[0, mf_size:]
        user_mf = self.user_mf_embedding(users) * mf_weight
        mf_scores = user_mf @ self.item_mf_embedding.weight.T  # [users, items]

        per_chunk = max(PAIRS_PER_CHUNK // max(self.n_items, 1), 1)
        mlp_scores = []
        for start in range(0, len(users), per_chunk):
            hidden = user_part[start : start + per_chunk, None, :] + item_part[None, :, :]
            mlp_scores.append(after_first(hidden) @ mlp_weight)
        logits = mf_scores + torch.cat(mlp_scores) + self.predict_layer.bias
        return self.sigmoid(logits).view(-1)
