"""The public `step_<N>_all_preds.<rank>` files, written with memory flat in the number of puzzles.

Each file is one `torch.save`d dict of tensors, the rows its rank evaluated in dataset order:
inputs, labels [n, L], puzzle_identifiers [n], logits [n, L, V] (forward dtype), q_halt_logits,
q_continue_logits [n] (fp32). An evaluation `add`s each row as it finishes; rows are copied into
one chunk buffer and spooled to `<directory>/chunk_<k>.npz` when it is full, so anonymous memory
holds at most one chunk of rows. `write` assembles each key in a file-backed array (a numpy
memmap beside the chunks), filled one chunk at a time, and saves the dict from there (temp file +
rename); the chunks and the memmaps are removed afterwards. Without a directory (a notebook's
`Evaluator.evaluate(save_predictions=True)`) the chunks stay in memory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from hrm_eval.utils.io import atomic_torch_save

PREDICTION_KEYS = ("inputs", "labels", "puzzle_identifiers", "logits", "q_halt_logits", "q_continue_logits")
CHUNK_ROWS = 256  # rows per spooled chunk: ARC logits are 43 KB a row, so a chunk is ~11 MB
# numpy has no bfloat16 / float16-alike for every torch dtype: such rows are kept as raw int16
# bits and viewed back as the torch dtype when saved (same bytes, same file).
_BITS = {torch.bfloat16: torch.int16}


class PredictionSpool:
    """The rows of the public all_preds files, in the order they are added (dataset order)."""

    def __init__(self, directory: str | Path | None = None, chunk_rows: int = CHUNK_ROWS):
        self.directory = Path(directory) if directory is not None else None
        self.chunk_rows = chunk_rows
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)  # a killed run's chunks: never mixed in
            self.directory.mkdir(parents=True)
        self.layout: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}  # key -> (row shape, dtype)
        self._buffer: dict[str, np.ndarray] = {}  # key -> [chunk_rows, *row shape]
        self._buffered = 0
        self._chunks: list[Path | dict[str, np.ndarray]] = []  # files, or arrays without a directory
        self.rows = 0

    def add(self, row: dict[str, torch.Tensor]) -> None:
        """One finished row: a tensor per PREDICTION_KEYS key (no batch dimension), copied."""
        if not self._buffer:
            self.layout = {k: (tuple(row[k].shape), row[k].dtype) for k in PREDICTION_KEYS}
            self._buffer = {
                k: np.empty((self.chunk_rows, *shape), _numpy_dtype(dtype)) for k, (shape, dtype) in self.layout.items()
            }
        for k in PREDICTION_KEYS:
            self._buffer[k][self._buffered] = _bits(row[k].detach().cpu()).numpy()
        self._buffered += 1
        self.rows += 1
        if self._buffered == self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        part = {k: b[: self._buffered] for k, b in self._buffer.items()}
        if self.directory is None:
            self._chunks.append({k: a.copy() for k, a in part.items()})
        else:
            path = self.directory / f"chunk_{len(self._chunks):06d}.npz"
            np.savez(path, **part)  # type: ignore[arg-type]  # (uncompressed: straight from the buffer)
            self._chunks.append(path)
        self._buffered = 0

    def _read_chunks(self) -> Iterator[dict[str, np.ndarray]]:
        """The chunks in order, one in memory at a time."""
        for chunk in self._chunks:
            if isinstance(chunk, dict):
                yield chunk
            else:
                with np.load(chunk) as npz:
                    yield {k: npz[k] for k in PREDICTION_KEYS}

    def tensors(self, owner: np.ndarray | None = None, rank: int = 0) -> dict[str, torch.Tensor]:
        """The dict one all_preds file holds: every row, or with `owner` ([rows] rank of each row)
        the rows of `rank`. Backed by memmaps in the directory when there is one."""
        self._flush()
        if self.rows == 0:
            return {k: torch.empty(0) for k in PREDICTION_KEYS}  # as torch.stack of nothing gave
        keep = None if owner is None else owner == rank  # [rows]
        n = self.rows if keep is None else int(keep.sum())
        out = {k: self._array(k, n, rank) for k in PREDICTION_KEYS}
        at = 0  # rows of this rank filled so far
        seen = 0  # rows of all ranks read so far
        for chunk in self._read_chunks():
            size = len(chunk[PREDICTION_KEYS[0]])
            mask = None if keep is None else keep[seen : seen + size]
            count = size if mask is None else int(mask.sum())
            for k in PREDICTION_KEYS:
                out[k][at : at + count] = chunk[k] if mask is None else chunk[k][mask]
            at, seen = at + count, seen + size
        return {k: torch.from_numpy(a).view(self.layout[k][1]) for k, a in out.items()}

    def _array(self, key: str, n: int, rank: int) -> np.ndarray:
        shape, dtype = self.layout[key]
        if self.directory is None or n == 0:  # (a memmap cannot be empty)
            return np.empty((n, *shape), _numpy_dtype(dtype))
        path = self.directory / f"assembled_{rank}_{key}.npy"
        return np.lib.format.open_memmap(path, mode="w+", dtype=_numpy_dtype(dtype), shape=(n, *shape))

    def write(self, prefix: Path, owner: np.ndarray | None = None, world_size: int = 1) -> list[Path]:
        """`<prefix>.<rank>` for every rank, as the public evaluators write them: each holds the rows
        its rank evaluated (`owner`: [rows] the rank of each row); one process writes `.0` only.
        Each file is written atomically; the spool's files are removed afterwards."""
        files = []
        try:
            for rank in range(world_size if owner is not None else 1):
                parts = self.tensors(owner if world_size > 1 else None, rank)
                files.append(atomic_torch_save(prefix.with_name(f"{prefix.name}.{rank}"), parts))
                del parts  # drops the memmaps before their files go
        finally:
            self.remove()
        return files

    def remove(self) -> None:
        """Delete the spooled chunks (and their directory)."""
        self._chunks, self._buffer, self._buffered = [], {}, 0
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=_BITS.get(dtype, dtype)).numpy().dtype


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(_BITS[t.dtype]) if t.dtype in _BITS else t
