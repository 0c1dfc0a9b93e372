"""Deterministic batching of a materialized split.

A split is a mapping of model-batch features to arrays with a leading example axis
(`{'encoder_input_tokens': [E, L], 'history_embeddings': [E, N, D], ...}`), as returned by
`persoma.seqio_tasks.materialize(...)`. The training order is a pure function of
`(seed, epoch)`: epoch `e` visits the examples in `default_rng([seed, e]).permutation(E)`, and
global step `s` takes batch `s % steps_per_epoch` of epoch `s // steps_per_epoch`. So a run
resumed at step `s` sees exactly the batches an uninterrupted run would, with no iterator state
to checkpoint. Multi-host: each process takes its contiguous `B / process_count` slice of every
global batch.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Mapping

import numpy as np


def _num_examples(arrays: Mapping[str, np.ndarray], where: str) -> int:
  if not arrays:
    raise ValueError(f"{where}: no features")
  sizes = {k: int(np.shape(v)[0]) for k, v in arrays.items()}
  if len(set(sizes.values())) != 1:
    raise ValueError(f"{where}: features disagree on the number of examples: {sizes}")
  return next(iter(sizes.values()))


def gather_rows(table: np.ndarray, index: np.ndarray) -> np.ndarray:
  """`table [V+1, D]` at `index [B, N, k]` -> history embeddings `[B, N, k*D]`."""
  return table[index].reshape(index.shape[:2] + (-1,))


@dataclasses.dataclass
class TrainBatcher:
  """Shuffled, drop-remainder batches whose order depends only on (seed, step).

  Attributes:
    arrays: features, each `[E, ...]`.
    batch_size: global batch size `B`.
    seed: data-order seed.
    process_index, process_count: this host's slice of every global batch.
    name: split name for error messages.
    history_table: `[V+1, D]` catalog embeddings when `arrays` hold `history_index`
      `[E, N, k]`; batches then carry the gathered `history_embeddings` `[B, N, k*D]`.
  """

  arrays: Mapping[str, np.ndarray]
  batch_size: int
  seed: int = 0
  process_index: int = 0
  process_count: int = 1
  name: str = "train"
  history_table: np.ndarray | None = None

  def __post_init__(self):
    self.arrays = {k: np.asarray(v) for k, v in self.arrays.items()}
    if ("history_index" in self.arrays) != (self.history_table is not None):
      raise ValueError(f"split {self.name!r}: history_index and history_table go together "
                       f"(features: {sorted(self.arrays)})")
    self.num_examples = _num_examples(self.arrays, f"split {self.name!r}")
    if self.num_examples == 0:
      raise ValueError(f"split {self.name!r} is empty: nothing to train on")
    if self.batch_size < 1 or self.batch_size % self.process_count:
      raise ValueError(
          f"batch_size={self.batch_size} must be >= 1 and divisible by the process "
          f"count {self.process_count}")
    if self.num_examples < self.batch_size:
      raise ValueError(
          f"split {self.name!r} has {self.num_examples} examples, fewer than "
          f"batch_size={self.batch_size}")
    self.steps_per_epoch = self.num_examples // self.batch_size
    self._perm_cache: tuple[int, np.ndarray] | None = None

  def permutation(self, epoch: int) -> np.ndarray:
    """Example order of `epoch`: `[E]` int64."""
    if self._perm_cache is None or self._perm_cache[0] != epoch:
      rng = np.random.default_rng([int(self.seed), int(epoch)])
      self._perm_cache = (epoch, rng.permutation(self.num_examples))
    return self._perm_cache[1]

  def indices(self, step: int) -> np.ndarray:
    """Global example indices of batch `step`: `[B]`."""
    epoch, k = divmod(int(step), self.steps_per_epoch)
    return self.permutation(epoch)[k * self.batch_size:(k + 1) * self.batch_size]

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's share of global batch `step`: each feature `[B / processes, ...]`."""
    idx = self.indices(step)
    per = self.batch_size // self.process_count
    idx = idx[self.process_index * per:(self.process_index + 1) * per]
    out = {k: v[idx] for k, v in self.arrays.items()}
    if self.history_table is not None:
      out["history_embeddings"] = gather_rows(self.history_table, out.pop("history_index"))
    return out

  def epoch_of(self, step: int) -> int:
    return int(step) // self.steps_per_epoch


def eval_batches(arrays: Mapping[str, np.ndarray], batch_size: int,
                 name: str = "eval") -> Iterator[tuple[dict[str, np.ndarray], int]]:
  """In-order batches covering every example once; the last one is padded by repeating
  example 0. Yields `(batch, num_real)` with each feature `[batch_size, ...]`."""
  arrays = {k: np.asarray(v) for k, v in arrays.items()}
  n = _num_examples(arrays, f"split {name!r}")
  if n == 0:
    raise ValueError(f"split {name!r} is empty: nothing to evaluate")
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    real = len(idx)
    if real < batch_size:
      idx = np.concatenate([idx, np.zeros(batch_size - real, dtype=idx.dtype)])
    yield {k: v[idx] for k, v in arrays.items()}, real
