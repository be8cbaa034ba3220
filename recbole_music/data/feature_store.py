"""Vector tables (see :mod:`dataset_prep.vector_table`) aligned to a RecBole dataset's ids."""

from __future__ import annotations

import numpy as np
import torch

from dataset_prep.vector_table import VectorTable


def align_to_dataset(
    table: VectorTable, dataset, field: str, chunk_rows: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """(vectors [num(field), dim], has_vector mask) in the dataset's remapped id order.

    Row 0 (RecBole's padding id) and ids without a vector get zeros and ``False`` in the mask;
    ids of the table that the dataset does not know are ignored (filtered-out users/items).
    A memory-mapped table is read with plain file reads through one ``chunk_rows`` buffer: the
    file's pages then stay in the OS page cache instead of counting toward this process, so
    peak memory is the output tensor plus the buffer (a 100k × 4,096 table: ~1.6 GiB, not 5).
    """
    token2id = dataset.field2token_id[field]
    targets = np.fromiter((token2id.get(t, -1) for t in table.ids), np.int64, len(table.ids))
    out = torch.zeros(dataset.num(field), table.dim)
    mask = torch.zeros(dataset.num(field), dtype=torch.bool)

    def place(start: int, block: np.ndarray) -> None:
        rows = targets[start : start + len(block)]
        keep = rows >= 0
        index = torch.from_numpy(rows[keep])
        out[index] = torch.from_numpy(np.ascontiguousarray(block[keep], dtype=np.float32))
        mask[index] = True

    vectors = table.vectors
    if not isinstance(vectors, np.memmap):
        place(0, np.asarray(vectors))
        return out, mask
    buffer = np.empty((chunk_rows, table.dim), dtype=np.float32)
    with open(vectors.filename, "rb") as handle:
        handle.seek(vectors.offset)
        for start in range(0, len(targets), chunk_rows):
            n = min(chunk_rows, len(targets) - start)
            view = memoryview(buffer[:n]).cast("B")
            if handle.readinto(view) != view.nbytes:
                raise ValueError(f"{vectors.filename}: shorter than its header says")
            place(start, buffer[:n])
    return out, mask
