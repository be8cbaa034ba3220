"""Vector tables (see :mod:`dataset_prep.vector_table`) aligned to a RecBole dataset's ids."""

from __future__ import annotations

import numpy as np
import torch

from dataset_prep.vector_table import VectorTable

# what the aligned table may take of the memory available when it is loaded: the model, the
# data set and the training batches need the rest
MEMORY_SHARE = 0.8


def available_memory_bytes() -> int | None:
    """Memory the system can still give (Linux ``MemAvailable``); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class TableTooLargeError(ValueError):
    """A vector table that would not fit in the memory available (a bad-input error: exit 2)."""


def check_fits_in_memory(
    table: VectorTable, rows: int, name: str, dtype: torch.dtype = torch.float32
) -> None:
    """Stop with a clear message, before allocating, when the aligned table would not fit."""
    need = rows * table.dim * torch.finfo(dtype).bits // 8
    available = available_memory_bytes()
    if available is not None and need > MEMORY_SHARE * available:
        gib = 1024**3
        raise TableTooLargeError(
            f"feature table '{name}' ({rows:,} rows × {table.dim:,} {str(dtype)[6:]}) needs "
            f"{need / gib:.1f} GiB once aligned, but only {available / gib:.1f} GiB of memory "
            f"is available (at most {MEMORY_SHARE:.0%} of it is used for one table): free memory, "
            "use a machine with more, vector_dtype: float16 (half the memory), or a model with a "
            "smaller hidden size"
        )


def align_to_dataset(
    table: VectorTable,
    dataset,
    field: str,
    chunk_rows: int = 8192,
    name: str = "",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(vectors [num(field), dim], has_vector mask) in the dataset's remapped id order.

    Row 0 (RecBole's padding id) and ids without a vector get zeros and ``False`` in the mask;
    ids of the table that the dataset does not know are ignored (filtered-out users/items).
    A memory-mapped table is read with plain file reads through one ``chunk_rows`` buffer: the
    file's pages then stay in the OS page cache instead of counting toward this process, so
    peak memory is the output tensor plus the buffer (a 100k × 4,096 table: ~1.6 GiB, not 5).
    ``dtype`` is the output's (float16: half the memory). A table whose aligned copy would not
    fit in the memory available stops first (:class:`TableTooLargeError`, naming ``name``).
    """
    check_fits_in_memory(table, dataset.num(field), name or field, dtype)
    token2id = dataset.field2token_id[field]
    targets = np.fromiter((token2id.get(t, -1) for t in table.ids), np.int64, len(table.ids))
    out = torch.zeros(dataset.num(field), table.dim, dtype=dtype)
    mask = torch.zeros(dataset.num(field), dtype=torch.bool)

    def place(start: int, block: np.ndarray) -> None:
        rows = targets[start : start + len(block)]
        keep = rows >= 0
        index = torch.from_numpy(rows[keep])
        out[index] = torch.from_numpy(np.ascontiguousarray(block[keep], dtype=np.float32)).to(dtype)
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
