"""Item vectors from the training interactions: a truncated SVD of the user-item matrix.

Content vectors (an MLLM over titles and images) say what an item *is*; they say little about
which items the same people choose, which is what full-ranking metrics reward on real data. The
training interactions of both domains form one user-item matrix in which overlapping users link
the two catalogues: its top right-singular vectors place an auxiliary item near the target items
its users also chose (PureSVD; Cremonesi et al., RecSys 2010). MuSiC reads them as frozen item
vectors beside (or instead of) the content vectors, so a user's history vector in the auxiliary
domain already points at the target items that co-occur with it, and the diffusion learns what
to add.

With ``interaction_vector_normalization: symmetric`` the matrix is first divided by the square
roots of its users' and items' interaction counts, D_u^-1/2 R D_i^-1/2, the normalisation of
LightGCN's propagation and of GF-CF's low-pass filter (Shen et al., CIKM 2021): in the binary
matrix the top singular vectors mostly follow popular items and heavy users, and the scaled one
lets the vectors follow who-chooses-what-together among all items.
``symmetric_readout`` multiplies those vectors back by the square root of each item's degree,
``D_i^1/2 V``: the item side of GF-CF's ideal low-pass filter (``s = r D_i^-1/2 V (D_i^1/2 V)^T``,
SVDTransfer's score), so a popular item keeps the weight it has in the users' choices while the
directions still come from the normalised matrix. MuSiC reads one table for both the user's
history vector and the item's score, so both sides get the read-out vectors.
``symmetric_filter`` is the whole filter: the items keep the read-out vectors ``D_i^1/2 V``, and a
user's history vector averages the fold-in vectors ``D_i^-1/2 V`` of their items instead, the
user side of the same filter, where a popular item says less about a user's taste than a rare
one. The user MLP then starts from the row that SVDTransfer scores with.

Only training interactions enter the matrix: every auxiliary interaction and the target
interactions of side and training-overlap users; a held-out user's target items never do.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recbole_music.model.degree_svd import degree_normalised, leading_right_singular_vectors

# the interaction_vector_normalization setting
NORMALIZATIONS = ("none", "symmetric", "symmetric_readout", "symmetric_filter")
# the normalizations whose items carry GF-CF's read-out D_i^1/2 V
READ_OUT = ("symmetric_readout", "symmetric_filter")


def interaction_item_vectors(dataset, dim: int, normalization: str = "none") -> torch.Tensor:
    """[n_items, dim] float32: the item side of :func:`interaction_vector_tables`."""
    return interaction_vector_tables(dataset, dim, normalization)[0]


def interaction_vector_tables(
    dataset, dim: int, normalization: str = "none"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(item vectors, history vectors), each [n_items, dim] float32. The item vectors are the top
    ``dim`` right-singular vectors of the binary training matrix (both domains;
    ``normalization`` ``symmetric`` scales it by its user and item degrees first,
    ``symmetric_readout`` and ``symmetric_filter`` also multiply the vectors by the square roots
    of the item degrees); the history vectors are what a user's history vector averages: the
    item table itself (the same tensor), except with ``symmetric_filter``, where they are the
    normalised matrix's vectors divided by the square roots of the item degrees. Each table is
    scaled so that an item with interactions has a vector of mean norm 1; zeros for items
    without training interactions.
    Deterministic up to floating-point noise: a fixed ARPACK start vector and a fixed sign per
    vector."""
    feat = dataset.inter_feat
    users = np.asarray(feat[dataset.uid_field])
    items = np.asarray(feat[dataset.iid_field])
    n_users, n_items = dataset.user_num, dataset.item_num
    matrix = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float64), (users, items)), shape=(n_users, n_items)
    )
    matrix.data[:] = 1.0  # a user-item pair counts once
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"interaction_vector_normalization must be one of {NORMALIZATIONS}, not "
            f"{normalization!r}"
        )
    seen = np.asarray(matrix.sum(0)).ravel() > 0
    if normalization != "none":
        matrix, item_degree = degree_normalised(matrix)
    k = min(dim, min(matrix.shape) - 1)
    if k < 1:
        raise ValueError(f"interaction vectors need a matrix larger than {matrix.shape}")
    singular = leading_right_singular_vectors(matrix, k)  # [n_items, k]
    vectors = singular
    if normalization in READ_OUT:
        vectors = singular * np.sqrt(item_degree)[:, None]  # D_i^1/2 V, GF-CF's read-out
    # A singular vector's sign is arbitrary, and ARPACK's varies from call to call (its
    # arithmetic is not bit-for-bit repeatable): fix it, as sklearn's svd_flip does, so that the
    # largest entry of each vector is positive and the same data gives the same vectors.
    largest = vectors[np.abs(vectors).argmax(axis=0), np.arange(vectors.shape[1])]
    signs = np.where(largest < 0, -1.0, 1.0)
    item_table = _scaled(vectors * signs, seen, dim)
    if normalization != "symmetric_filter":
        return item_table, item_table
    fold_in = singular * signs / np.sqrt(item_degree)[:, None]  # D_i^-1/2 V, GF-CF's fold-in
    return item_table, _scaled(fold_in, seen, dim)


def _scaled(vectors: np.ndarray, seen: np.ndarray, dim: int) -> torch.Tensor:
    """``vectors`` at mean norm 1 over the ``seen`` items, zeros for the others, padded to
    ``dim`` columns, as float32."""
    norms = np.linalg.norm(vectors[seen], axis=1)
    vectors = vectors / max(norms.mean(), 1e-12)
    vectors[~seen] = 0.0
    if vectors.shape[1] < dim:
        vectors = np.pad(vectors, ((0, 0), (0, dim - vectors.shape[1])))
    return torch.from_numpy(vectors.astype(np.float32))
