"""Genre-preference labels: which genres a user likes and dislikes.

Default rule (UEM / PERSOMA): over the user's whole pruned history, a genre qualifies if at least
3 rated movies carry it; liked = up to 3 qualifying genres with the highest mean rating among those
with mean > 3.5; disliked = up to 3 with the lowest mean among those with mean < 3.0. Ties are
broken by larger count, then canonical genre order. A movie with several genres counts its rating
once for each. All thresholds, counts and the label source are fields of :class:`LabelConfig`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from persoma.data import formats, genres as genres_lib
from persoma.data.structures import MovieLensData

LABEL_SOURCES = ("history", "shown")
# Orders of the rationale's genres: canonical genre order, or by mean rating (highest first).
RATIONALE_ORDERS = ("canonical", "rating")


@dataclasses.dataclass(frozen=True)
class LabelConfig:
  """How labels are derived.

  Attributes:
    min_genre_count: a genre qualifies only if at least this many rated movies carry it.
    like_threshold: liked genres have mean rating strictly above this.
    dislike_threshold: disliked genres have mean rating strictly below this.
    max_liked: at most this many liked genres (best first).
    max_disliked: at most this many disliked genres (worst first).
    source: 'history' (whole pruned history, the default) or 'shown' (only the sampled items).
    keep_empty: keep users with no liked and no disliked genre (targets 'None'/'None').
  """

  min_genre_count: int = 3
  like_threshold: float = 3.5
  dislike_threshold: float = 3.0
  max_liked: int = 3
  max_disliked: int = 3
  source: str = "history"
  keep_empty: bool = False

  def __post_init__(self):
    if self.source not in LABEL_SOURCES:
      raise ValueError(f"LabelConfig.source={self.source!r}; valid: {LABEL_SOURCES}")
    if self.min_genre_count < 1 or self.max_liked < 0 or self.max_disliked < 0:
      raise ValueError(f"invalid LabelConfig counts: {self}")
    for name in ("like_threshold", "dislike_threshold"):
      value = getattr(self, name)
      if not 0.0 <= value <= 5.0:
        raise ValueError(f"LabelConfig.{name}={value} is outside the 0-5 star scale")
    if self.dislike_threshold > self.like_threshold:
      raise ValueError(f"LabelConfig.dislike_threshold={self.dislike_threshold} exceeds "
                       f"like_threshold={self.like_threshold}")


@dataclasses.dataclass(frozen=True)
class UserLabels:
  """Liked and disliked canonical genres, best-first (liked) / worst-first (disliked)."""

  liked: tuple[str, ...]
  disliked: tuple[str, ...]

  @property
  def empty(self) -> bool:
    return not self.liked and not self.disliked


def movie_genre_matrix(data: MovieLensData) -> np.ndarray:
  """``[M, 19]`` bool genre indicators of the catalog (cached on the catalog object)."""
  cat = data.catalog
  cached = getattr(cat, "_persoma_genre_matrix", None)
  if cached is None:
    cached = genres_lib.genre_matrix(cat.genres)
    object.__setattr__(cat, "_persoma_genre_matrix", cached)
  return cached


def labels_from_stats(sums: np.ndarray, counts: np.ndarray,
                      config: LabelConfig = LabelConfig()) -> UserLabels:
  """Labels from per-genre rating sums and counts (``[19]`` each)."""
  counts = np.asarray(counts, dtype=np.float64)
  sums = np.asarray(sums, dtype=np.float64)
  ok = counts >= config.min_genre_count
  means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
  idx = np.arange(genres_lib.NUM_GENRES)
  liked_c = idx[ok & (means > config.like_threshold)]
  disliked_c = idx[ok & (means < config.dislike_threshold)]
  # lexsort: last key is primary.
  liked = liked_c[np.lexsort((liked_c, -counts[liked_c], -means[liked_c]))][:config.max_liked]
  disliked = disliked_c[np.lexsort((disliked_c, -counts[disliked_c],
                                    means[disliked_c]))][:config.max_disliked]
  return UserLabels(liked=tuple(genres_lib.GENRES[i] for i in liked),
                    disliked=tuple(genres_lib.GENRES[i] for i in disliked))


def genre_stats(data: MovieLensData, positions: Sequence[int] | np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
  """Per-genre ``(rating sums [19] float64, counts [19] int64)`` over rating ``positions``."""
  pos = np.asarray(positions, dtype=np.int64)
  g = movie_genre_matrix(data)[data.ratings.movie_idx[pos]]  # [n, 19]
  r = data.ratings.rating[pos].astype(np.float64)
  return (g * r[:, None]).sum(axis=0), g.sum(axis=0).astype(np.int64)


def labels_for_positions(data: MovieLensData, positions: Sequence[int] | np.ndarray,
                         config: LabelConfig = LabelConfig()) -> UserLabels:
  """The label rule applied to the ratings at ``positions`` only (the 'shown' source)."""
  return labels_from_stats(*genre_stats(data, positions), config)


def rationale(data: MovieLensData, positions: Sequence[int] | np.ndarray,
              config: LabelConfig = LabelConfig(), order: str = "canonical",
              header: str = formats.RATIONALE_HEADER, with_counts: bool = False) -> str:
  """The label rule's working on the shown items, as text written before the target: each
  genre that qualifies there (at least ``min_genre_count`` shown movies) with its mean rating
  (``persoma.data.formats.format_rationale``), in canonical genre order or (``order='rating'``)
  highest mean first, with ties broken as the rule breaks them, so the liked labels are the
  first genres over ``like_threshold`` in order and the disliked ones the last genres under
  ``dislike_threshold`` read backwards (ties: more movies first, then canonical order; under
  ``dislike_threshold`` both reversed). ``header``: ``formats.RATIONALE_HEADERS``.
  ``with_counts``: each genre's shown movie count before its mean (``Action 4 3.75``), so the
  text holds all the rule uses."""
  if order not in RATIONALE_ORDERS:
    raise ValueError(f"rationale order {order!r}; valid: {', '.join(RATIONALE_ORDERS)}")
  sums, counts = genre_stats(data, positions)
  ok = np.flatnonzero(counts >= config.min_genre_count)
  if order == "rating":
    means = sums[ok] / counts[ok]
    low = means < config.dislike_threshold
    ok = ok[np.lexsort((np.where(low, -ok, ok), np.where(low, counts[ok], -counts[ok]), -means))]
  return formats.format_rationale([genres_lib.GENRES[i] for i in ok],
                                  [sums[i] / counts[i] for i in ok], header,
                                  [int(counts[i]) for i in ok] if with_counts else None)


def all_genre_stats(data: MovieLensData) -> tuple[np.ndarray, np.ndarray]:
  """Per-user ``(sums [U, 19] float64, counts [U, 19] int64)`` over whole histories."""
  rt = data.ratings
  u = data.num_users
  g = movie_genre_matrix(data)[rt.movie_idx]  # [R, 19] bool
  sums = np.zeros((u, genres_lib.NUM_GENRES), dtype=np.float64)
  counts = np.zeros((u, genres_lib.NUM_GENRES), dtype=np.int64)
  nonempty = np.flatnonzero(np.diff(rt.user_offsets) > 0)
  if nonempty.size:
    starts = rt.user_offsets[nonempty]
    sums[nonempty] = np.add.reduceat(g * rt.rating[:, None].astype(np.float64), starts, axis=0)
    counts[nonempty] = np.add.reduceat(g.astype(np.int64), starts, axis=0)
  return sums, counts


def user_labels(data: MovieLensData, config: LabelConfig = LabelConfig()) -> list[UserLabels]:
  """Labels of every user (index order) from their whole pruned history."""
  sums, counts = all_genre_stats(data)
  return [labels_from_stats(sums[i], counts[i], config) for i in range(data.num_users)]


def item_targets(data: MovieLensData, positions_list: Sequence[np.ndarray], history_size: int
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Per example and shown item: ``(genres [E, N, 19] float32, stars [E, N] int32)``.

  ``stars`` is the 0-based star (half stars round up: 3.5 -> 4 stars -> 3); rows past an
  example's items are 0 (the history mask tells them apart).
  """
  gm = movie_genre_matrix(data)
  genres = np.zeros((len(positions_list), history_size, gm.shape[1]), np.float32)
  stars = np.zeros((len(positions_list), history_size), np.int32)
  for e, pos in enumerate(positions_list):
    pos = np.asarray(pos, np.int64).reshape(-1)
    if pos.size > history_size:
      raise ValueError(f"example {e}: history has {pos.size} items, more than "
                       f"history_size={history_size}")
    genres[e, :pos.size] = gm[data.ratings.movie_idx[pos]]
    stars[e, :pos.size] = np.clip(np.ceil(data.ratings.rating[pos]), 1, 5).astype(np.int32) - 1
  return genres, stars
