"""The truncated SVD of a user × item interaction matrix, shared by MuSiC's interaction vectors
and SVDTransfer: the degree normalisation of LightGCN and GF-CF, and a reproducible ARPACK call."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds


def degree_normalised(matrix: sp.spmatrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """(``D_u^-1/2 R D_i^-1/2``, the item degrees ``D_i``): each entry divided by the square
    roots of its user's and its item's interaction counts (a count of 0 counts as 1)."""
    user_degree = np.maximum(np.asarray(matrix.sum(axis=1)).ravel(), 1.0)
    item_degree = np.maximum(np.asarray(matrix.sum(axis=0)).ravel(), 1.0)
    normalised = sp.diags(user_degree**-0.5) @ matrix @ sp.diags(item_degree**-0.5)
    return normalised.tocsr(), item_degree


def leading_right_singular_vectors(matrix: sp.spmatrix, k: int) -> np.ndarray:
    """[n_columns, k]: the top ``k`` right singular vectors, the largest first. ARPACK starts
    from a fixed vector, so the same data gives the same subspace (signs stay arbitrary)."""
    start = np.full(min(matrix.shape), 1.0 / np.sqrt(min(matrix.shape)))
    _, singular, vt = svds(matrix, k=k, v0=start)
    return vt[np.argsort(-singular)].T
