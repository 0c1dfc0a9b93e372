"""The in-memory dataset: catalog, time-sorted ratings, and how it was loaded.

All arrays are numpy; nothing here imports jax or tensorflow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Catalog:
  """One row per movie kept after pruning; row index = ``movie_idx``.

  Attributes:
    movie_ids: ``[M]`` int64 original MovieLens ids.
    titles: ``M`` titles (with the release year where MovieLens gives one).
    genres: ``M`` tuples of canonical genre names (persoma.data.genres.GENRES order).
    descriptions: ``M`` plot descriptions, ``''`` where unknown.
    popularity: ``[M]`` int64 number of ratings after pruning.
  """

  movie_ids: np.ndarray
  titles: tuple[str, ...]
  genres: tuple[tuple[str, ...], ...]
  descriptions: tuple[str, ...]
  popularity: np.ndarray

  def __len__(self) -> int:
    return int(self.movie_ids.shape[0])


@dataclasses.dataclass(frozen=True)
class Ratings:
  """All ratings, sorted by ``(user_idx, timestamp, movie_idx)``.

  Attributes:
    user_idx: ``[R]`` int32 index into ``MovieLensData.user_ids``.
    movie_idx: ``[R]`` int32 index into the Catalog.
    rating: ``[R]`` float32 stars (0.5-5).
    timestamp: ``[R]`` int64 seconds since the epoch.
    user_offsets: ``[U+1]`` int64; user ``u``'s ratings are positions
      ``[user_offsets[u], user_offsets[u+1])``.
  """

  user_idx: np.ndarray
  movie_idx: np.ndarray
  rating: np.ndarray
  timestamp: np.ndarray
  user_offsets: np.ndarray

  def __len__(self) -> int:
    return int(self.rating.shape[0])

  def user_slice(self, user: int) -> slice:
    """Positions of user index ``user``'s ratings (time order)."""
    return slice(int(self.user_offsets[user]), int(self.user_offsets[user + 1]))


@dataclasses.dataclass(frozen=True)
class LoadReport:
  """What happened while loading: counted skips and pruning, for stats output.

  Attributes:
    source: 'local', 'tfds' or 'synthetic'.
    files: files read (local) or builder names (tfds).
    skipped_lines: malformed lines skipped per file (only with ``strict=False``).
    unknown_movie_ratings: ratings skipped because their movie id is not in the movies file.
    duplicate_ratings: repeated (user, movie) ratings dropped (the latest kept).
    descriptions_matched: catalog movies (before pruning) given a non-empty description.
    raw_users, raw_movies, raw_ratings: sizes before pruning.
    min_item_ratings, min_user_ratings: pruning thresholds used.
  """

  source: str = "local"
  files: tuple[str, ...] = ()
  skipped_lines: dict[str, int] = dataclasses.field(default_factory=dict)
  unknown_movie_ratings: int = 0
  duplicate_ratings: int = 0
  descriptions_matched: int = 0
  raw_users: int = 0
  raw_movies: int = 0
  raw_ratings: int = 0
  min_item_ratings: int = 0
  min_user_ratings: int = 0

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class MovieLensData:
  """A loaded, pruned dataset.

  Attributes:
    name: 'movielens/1m', 'movielens/latest-small', ..., or 'synthetic'.
    user_ids: ``[U]`` int64 original user ids (ascending).
    catalog: the movies kept after pruning.
    ratings: the ratings kept after pruning, sorted by (user, time, movie).
    synthetic: True for generated data (must be reported as such).
    report: counted skips and pre-pruning sizes.
  """

  name: str
  user_ids: np.ndarray
  catalog: Catalog
  ratings: Ratings
  synthetic: bool
  report: LoadReport = dataclasses.field(default_factory=LoadReport)

  @property
  def num_users(self) -> int:
    return int(self.user_ids.shape[0])

  def user_positions(self, user: int) -> np.ndarray:
    """``[n]`` int64 rating positions of user index ``user`` in time order."""
    return np.arange(self.ratings.user_offsets[user], self.ratings.user_offsets[user + 1],
                     dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class RawData:
  """Unpruned ratings and movies as read from a source (before pruning and sorting).

  Attributes:
    movie_ids: ``[M0]`` int64; titles, genres, descriptions: per movie.
    user_ids: ``[R0]`` int64 raw user id per rating; ``rating_movie_ids`` ``[R0]`` int64;
    ratings: ``[R0]`` float32; timestamps: ``[R0]`` int64.
  """

  movie_ids: np.ndarray
  titles: tuple[str, ...]
  genres: tuple[tuple[str, ...], ...]
  descriptions: tuple[str, ...]
  user_ids: np.ndarray
  rating_movie_ids: np.ndarray
  ratings: np.ndarray
  timestamps: np.ndarray
  report: LoadReport
