"""The on-disk catalog embedding cache and history assembly.

Every distinct item text of a catalog (for ``uem``: the title/genre text of each movie, its
description, and each distinct rating text) is embedded ONCE per (dataset, encoder, format) and
cached on disk; a user's history is then assembled by table lookup and concatenation:
``[N, k*D]`` with ``k = 3`` for ``uem`` and ``k = 1`` for the single-text formats.

Cache layout: ``{cache_dir}/embeddings/{dataset}/{encoder}/{fmt}-{text_hash}.npz`` where
``text_hash`` hashes the ordered list of distinct texts (so a changed catalog never reads stale
vectors). A file that is unreadable, truncated, of the wrong shape, non-finite or whose checksum
does not match is reported and rebuilt (the file format: ``persoma.embeddings.cache``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from persoma.embeddings import cache
from persoma.embeddings.encoders import Encoder

# Rating stars are multiples of 0.5 in every MovieLens release: code = round(2 * stars).
_RATING_CODES = 11


def _slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "unnamed"


def _log(msg: str) -> None:
  print(f"[persoma.embeddings] {msg}", file=sys.stderr, flush=True)


class Progress:
  """Prints ``done/total, items/s, ETA`` to stderr at most every ``interval`` seconds."""

  def __init__(self, total: int, desc: str, enabled: bool = True, interval: float = 2.0):
    self.total, self.desc, self.enabled, self.interval = int(total), desc, enabled, interval
    self.start = self.last = time.perf_counter()
    self.done = 0

  def update(self, n: int) -> None:
    self.done += int(n)
    now = time.perf_counter()
    if self.enabled and (now - self.last >= self.interval or self.done >= self.total):
      self.last = now
      _log(self.line(now))

  def line(self, now: float | None = None) -> str:
    elapsed = max((now or time.perf_counter()) - self.start, 1e-9)
    rate = self.done / elapsed
    eta = (self.total - self.done) / rate if rate > 0 else float("inf")
    return (f"{self.desc}: {self.done}/{self.total} texts, {rate:,.1f} items/s, "
            f"elapsed {elapsed:.1f}s, ETA {eta:.1f}s")


@dataclasses.dataclass(frozen=True)
class EmbedStats:
  """What a build did.

  Attributes:
    distinct_texts: number of distinct texts in the catalog for this format.
    encoded_texts: texts sent to the encoder by this build (0 on a cache hit).
    encode_calls: encoder batches issued by this build.
    per_rating_texts: texts a per-rating embedding would encode (``ratings * k``).
    cache_hit: vectors came from the cache file.
    seconds: wall time of the build (text collection + encode or load).
    cache_path: the cache file.
  """

  distinct_texts: int
  encoded_texts: int
  encode_calls: int
  per_rating_texts: int
  cache_hit: bool
  seconds: float
  cache_path: str

  @property
  def ratio(self) -> float:
    """How many times fewer texts are embedded than with per-rating embedding."""
    return self.per_rating_texts / max(self.distinct_texts, 1)

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d["ratio_vs_per_rating"] = self.ratio
    return d


def _item_texts_fn() -> Callable[..., tuple[str, ...]]:
  from persoma.data import formats  # pylint: disable=g-import-not-at-top
  return formats.item_texts


def collect_texts(data: Any, fmt: str, item_texts: Callable[..., tuple[str, ...]] | None = None
                  ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
  """Distinct texts of ``data`` in format ``fmt``.

  Works per distinct (movie, rating) pair so ``item_texts`` runs once per pair, not per rating.

  Returns:
    texts: the distinct texts, in order of first use (pairs sorted by movie then rating).
    pair_text: ``[P, k]`` int32 text index of each (movie, rating) pair's k texts.
    rating_pair: ``[R]`` int32 pair index of every rating position.
    pair_movie: ``[P]`` int32 movie index of each pair (for error messages).
  """
  item_texts = item_texts or _item_texts_fn()
  cat, ratings = data.catalog, data.ratings
  codes = np.rint(np.asarray(ratings.rating, np.float64) * 2).astype(np.int64)
  if codes.size and (codes.min() < 0 or codes.max() >= _RATING_CODES):
    raise ValueError(f"{data.name}: ratings outside 0-5 stars in steps of 0.5 "
                     f"(min {ratings.rating.min()}, max {ratings.rating.max()})")
  keys = np.asarray(ratings.movie_idx, np.int64) * _RATING_CODES + codes
  uniq, rating_pair = np.unique(keys, return_inverse=True)
  pair_movie = (uniq // _RATING_CODES).astype(np.int32)
  pair_stars = (uniq % _RATING_CODES) / 2.0
  index: dict[str, int] = {}
  texts: list[str] = []
  rows = []
  for m, stars in zip(pair_movie.tolist(), pair_stars.tolist()):
    item = item_texts(fmt, cat.titles[m], cat.genres[m], cat.descriptions[m], float(stars))
    row = []
    for t in item:
      i = index.get(t)
      if i is None:
        i = index[t] = len(texts)
        texts.append(t)
      row.append(i)
    rows.append(row)
  k = len(rows[0]) if rows else len(item_texts(fmt, "", (), "", 3))
  if any(len(r) != k for r in rows):
    raise ValueError(f"item_texts({fmt!r}) returned a varying number of texts")
  pair_text = np.asarray(rows, np.int32).reshape(len(rows), k)
  return texts, pair_text, rating_pair.astype(np.int32).reshape(-1), pair_movie


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddingStore:
  """Embeddings of a catalog's distinct texts plus the index to assemble histories.

  Attributes:
    dataset: the dataset name (``MovieLensData.name``).
    encoder_name: ``Encoder.name``.
    fmt: item text format ('uem', 'complete', 'title_score', 'description_score').
    texts: the ``V`` distinct texts.
    table: ``[V, D]`` float32 embedding of each text.
    pair_text: ``[P, k]`` int32 text indices of each (movie, rating) pair.
    rating_pair: ``[R]`` int32 pair index of each rating position.
    stats: what the build did.
    slot_stats: set by :meth:`standardized`: per text slot, the float64 ``(mean [D], std [D])``
      it z-scored that slot with (None for a raw store).
  """

  dataset: str
  encoder_name: str
  fmt: str
  texts: tuple[str, ...]
  table: np.ndarray
  pair_text: np.ndarray
  rating_pair: np.ndarray
  stats: EmbedStats
  slot_stats: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None

  @property
  def dim(self) -> int:
    """Per-text width ``D``."""
    return int(self.table.shape[1])

  @property
  def texts_per_item(self) -> int:
    """``k``: 3 for uem, 1 otherwise."""
    return int(self.pair_text.shape[1])

  @property
  def item_dim(self) -> int:
    """Width of one history row, ``k * D``."""
    return self.texts_per_item * self.dim

  @classmethod
  def build(cls, data: Any, encoder: Encoder, fmt: str, cache_dir: str | os.PathLike | None = None,
            *, chunk_size: int = 1024, progress: bool | None = None,
            item_texts: Callable[..., tuple[str, ...]] | None = None) -> "EmbeddingStore":
    """Embeds each distinct text of ``data`` once (or loads it from the cache).

    Args:
      data: a ``persoma.data.MovieLensData``.
      encoder: any :class:`Encoder`.
      fmt: item text format.
      cache_dir: cache root (default :func:`persoma.embeddings.cache.default_cache_dir`).
      chunk_size: texts per encoder call.
      progress: print items/s and ETA to stderr (``None``: only for more than 2,000 texts).
      item_texts: override of ``persoma.data.formats.item_texts`` (tests).
    """
    if int(chunk_size) < 1:
      raise ValueError(f"chunk_size={chunk_size}: texts per encoder call must be >= 1")
    t0 = time.perf_counter()
    texts, pair_text, rating_pair, pair_movie = collect_texts(data, fmt, item_texts)
    corpus_hash = cache.text_hash(texts, fmt)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache.default_cache_dir()
    path = (root / "embeddings" / _slug(data.name) / _slug(encoder.name)
            / f"{_slug(fmt)}-{corpus_hash[:20]}.npz")
    per_rating = int(rating_pair.shape[0]) * int(pair_text.shape[1])
    emb, reason = cache.load(path, corpus_hash, len(texts))
    calls = encoded = 0
    if emb is None:
      if reason != "absent":
        _log(f"cache file {path} is corrupt or stale ({reason}); rebuilding it")
      show = progress if progress is not None else len(texts) > 2000
      bar = Progress(len(texts), f"embedding {data.name}/{fmt} with {encoder.name}", show)
      parts = []
      for s in range(0, len(texts), chunk_size):
        chunk = texts[s:s + chunk_size]
        out = np.asarray(encoder.encode(chunk), dtype=np.float32)
        if out.shape[0] != len(chunk) or out.ndim != 2:
          raise ValueError(f"encoder {encoder.name} returned shape {out.shape} for "
                           f"{len(chunk)} texts; expected [{len(chunk)}, D]")
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if bad.size:
          _raise_non_finite(data, encoder, texts, pair_text, pair_movie, s + int(bad[0]))
        parts.append(out)
        calls += 1
        encoded += len(chunk)
        bar.update(len(chunk))
      dim = parts[0].shape[1] if parts else int(encoder.dim)
      emb = np.concatenate(parts, axis=0) if parts else np.zeros((0, dim), np.float32)
      cache.save(path, emb, corpus_hash, {"dataset": data.name, "encoder": encoder.name,
                                          "fmt": fmt})
    stats = EmbedStats(distinct_texts=len(texts), encoded_texts=encoded, encode_calls=calls,
                       per_rating_texts=per_rating, cache_hit=calls == 0 and reason == "ok",
                       seconds=time.perf_counter() - t0, cache_path=str(path))
    return cls(dataset=data.name, encoder_name=encoder.name, fmt=fmt, texts=tuple(texts),
               table=emb, pair_text=pair_text, rating_pair=rating_pair, stats=stats)

  def standardized(self, eps: float = 1e-6) -> "EmbeddingStore":
    """A copy whose table is z-scored per dimension, separately for each text slot.

    Slot ``j`` (e.g. uem's genre sentence, rating sentence, description) is standardized over
    its own distinct texts (``pair_text[:, j]``), so a slot with few distinct texts (the 5 rating
    sentences) gets differences of order 1 instead of ~0.01 around a shared direction. Rows used
    by several slots take the statistics of the last such slot. ``table`` rows stay in place.
    """
    if self.slot_stats is not None:
      raise ValueError(f"EmbeddingStore of {self.dataset}/{self.fmt} is already standardized")
    table = np.array(self.table, dtype=np.float64)
    out = table.copy()
    stats = []
    for j in range(self.texts_per_item):
      rows = np.unique(self.pair_text[:, j])
      mu, sd = np.zeros(self.dim), np.ones(self.dim)
      if rows.size:
        mu = table[rows].mean(axis=0)
        sd = np.sqrt(table[rows].var(axis=0) + eps)
        out[rows] = (table[rows] - mu) / sd
      stats.append((mu, sd))
    return dataclasses.replace(self, table=out.astype(np.float32), slot_stats=tuple(stats))

  def item_embeddings(self, items: Sequence[Sequence[str]], encoder: Encoder) -> np.ndarray:
    """``[n, k*D]`` float32 history rows of items given by their ``k`` texts, as training sees
    them: a text of the catalog takes its ``table`` row (standardized or not, as this store
    is); any other text is embedded by ``encoder`` (the store's) and, in a standardized store,
    z-scored with the statistics of its slot (:attr:`slot_stats`).
    """
    k = self.texts_per_item
    if any(len(t) != k for t in items):
      raise ValueError(f"EmbeddingStore of format {self.fmt!r} takes {k} texts per item")
    index = {t: i for i, t in enumerate(self.texts)}
    out = np.zeros((len(items), k, self.dim), np.float32)
    unseen = []
    for r, t in enumerate(items):
      for j in range(k):
        if t[j] in index:
          out[r, j] = self.table[index[t[j]]]
        else:
          unseen.append((r, j))
    if unseen:  # embedded as the store's build does (float32), then as `standardized` does
      emb = np.asarray(encoder.encode([items[r][j] for r, j in unseen]), np.float32)
      if emb.shape != (len(unseen), self.dim):
        raise ValueError(f"encoder {encoder.name} gave shape {emb.shape} for {len(unseen)} "
                         f"texts; this store of {self.encoder_name} has width {self.dim}")
      for (r, j), e in zip(unseen, emb.astype(np.float64)):
        if self.slot_stats is not None:
          e = (e - self.slot_stats[j][0]) / self.slot_stats[j][1]
        out[r, j] = e.astype(np.float32)
    return out.reshape(len(items), k * self.dim)

  def _check_data(self, data: Any) -> None:
    if data is not None and len(data.ratings.rating) != self.rating_pair.shape[0]:
      raise ValueError(f"EmbeddingStore was built for {self.dataset} with "
                       f"{self.rating_pair.shape[0]} ratings; got data {data.name} with "
                       f"{len(data.ratings.rating)}")

  def text_index(self, positions: np.ndarray) -> np.ndarray:
    """``[n, k]`` int32 text indices of the rating positions ``[n]``."""
    return self.pair_text[self.rating_pair[np.asarray(positions, np.int64)]]

  def history(self, data: Any, positions: np.ndarray, history_size: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """One user's history.

    Args:
      data: the dataset the store was built from (checked by size; may be None).
      positions: ``[n]`` rating positions (time order), ``n <= history_size``.
      history_size: ``N``.

    Returns:
      ``(emb [N, k*D] float32, mask [N] int32)``: rows in the given order, zeros and mask 0
      past ``n``.
    """
    emb, mask = self.histories(data, [positions], history_size)
    return emb[0], mask[0]

  def history_index(self, positions_list: Sequence[np.ndarray], history_size: int
                    ) -> np.ndarray:
    """``[E, N, k]`` int32 text indices per example; ``V`` (one past the table) for padding."""
    n_ex, k = len(positions_list), self.texts_per_item
    out = np.full((n_ex, history_size, k), len(self.texts), np.int32)
    for e, pos in enumerate(positions_list):
      pos = np.asarray(pos, np.int64).reshape(-1)
      if pos.shape[0] > history_size:
        raise ValueError(f"history has {pos.shape[0]} items, more than history_size="
                         f"{history_size}")
      if pos.size and (pos.min() < 0 or pos.max() >= self.rating_pair.shape[0]):
        raise IndexError(f"rating position out of range [0, {self.rating_pair.shape[0]})")
      out[e, :pos.shape[0]] = self.text_index(pos)
    return out

  def padded_table(self) -> np.ndarray:
    """``[V+1, D]`` float32: the table plus a zero row for padding index ``V``."""
    return np.concatenate([self.table, np.zeros((1, self.dim), np.float32)], axis=0)

  def histories(self, data: Any, positions_list: Sequence[np.ndarray], history_size: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Batched :meth:`history`: ``(emb [E, N, k*D] float32, mask [E, N] int32)``."""
    self._check_data(data)
    idx = self.history_index(positions_list, history_size)
    mask = (idx[:, :, 0] < len(self.texts)).astype(np.int32)
    emb = self.padded_table()[idx].reshape(len(positions_list), history_size, self.item_dim)
    return emb, mask


def _raise_non_finite(data: Any, encoder: Encoder, texts: Sequence[str], pair_text: np.ndarray,
                      pair_movie: np.ndarray, text_i: int) -> None:
  pairs = np.flatnonzero((pair_text == text_i).any(axis=1))
  where = ""
  if pairs.size:
    m = int(pair_movie[pairs[0]])
    where = (f" (first used by movie_idx {m}, movie_id {int(data.catalog.movie_ids[m])}, "
             f"title {data.catalog.titles[m]!r})")
  raise ValueError(f"encoder {encoder.name} returned a non-finite embedding for text "
                   f"#{text_i} {texts[text_i][:200]!r}{where} of dataset {data.name}")
