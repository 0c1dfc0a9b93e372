"""Pruning and indexing: RawData -> MovieLensData.

Pruning follows the papers: drop movies with fewer than ``min_item_ratings`` ratings, then users
with fewer than ``min_user_ratings`` remaining ratings (one pass each, in that order). The kept
ratings are sorted by ``(user_idx, timestamp, movie_idx)``; all steps are vectorised numpy.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from persoma.data.structures import Catalog, MovieLensData, RawData, Ratings


def drop_duplicates(user_ids: np.ndarray, movie_ids: np.ndarray,
                    timestamps: np.ndarray) -> np.ndarray:
  """``[R]`` bool mask keeping the latest rating of each repeated (user, movie) pair."""
  order = np.lexsort((timestamps, movie_ids, user_ids))
  u, m = user_ids[order], movie_ids[order]
  last = np.ones(order.size, dtype=bool)
  if order.size > 1:
    last[:-1] = (u[1:] != u[:-1]) | (m[1:] != m[:-1])
  keep = np.zeros(order.size, dtype=bool)
  keep[order[last]] = True
  return keep


def prune_mask(user_ids: np.ndarray, movie_ids: np.ndarray, min_item_ratings: int,
               min_user_ratings: int) -> np.ndarray:
  """``[R]`` bool mask of ratings kept by item-then-user pruning.

  Args:
    user_ids: ``[R]`` int64 raw user id per rating.
    movie_ids: ``[R]`` int64 raw movie id per rating.
  """
  _, movie_inv, movie_counts = np.unique(movie_ids, return_inverse=True, return_counts=True)
  keep = movie_counts[movie_inv] >= min_item_ratings
  _, user_inv = np.unique(user_ids, return_inverse=True)
  user_counts = np.bincount(user_inv, weights=keep.astype(np.float64))
  return keep & (user_counts[user_inv] >= min_user_ratings)


def build_dataset(raw: RawData, name: str, *, min_item_ratings: int = 20,
                  min_user_ratings: int = 20, synthetic: bool = False) -> MovieLensData:
  """Deduplicates, prunes, sorts and indexes raw ratings into a MovieLensData."""
  if min_item_ratings < 0 or min_user_ratings < 0:
    raise ValueError(f"min_item_ratings={min_item_ratings} and min_user_ratings="
                     f"{min_user_ratings} must be >= 0")
  users, movies = raw.user_ids, raw.rating_movie_ids
  ratings, ts = raw.ratings, raw.timestamps
  if not np.isfinite(ratings).all():
    raise ValueError(f"{name}: non-finite ratings")
  dedup = drop_duplicates(users, movies, ts)
  duplicates = int((~dedup).sum())
  if duplicates:
    users, movies, ratings, ts = users[dedup], movies[dedup], ratings[dedup], ts[dedup]
  keep = prune_mask(users, movies, min_item_ratings, min_user_ratings)
  users, movies, ratings, ts = users[keep], movies[keep], ratings[keep], ts[keep]
  if users.size == 0:
    raise ValueError(
        f"{name}: no ratings left after pruning (min_item_ratings={min_item_ratings}, "
        f"min_user_ratings={min_user_ratings}; {raw.ratings.size} ratings before)")

  # Catalog rows: the kept movies in ascending original-id order.
  kept_movie_ids = np.unique(movies)
  row_of_raw = np.argsort(raw.movie_ids, kind="stable")
  pos = np.searchsorted(raw.movie_ids, kept_movie_ids, sorter=row_of_raw)
  raw_rows = row_of_raw[pos]
  movie_idx = np.searchsorted(kept_movie_ids, movies).astype(np.int32)
  user_ids = np.unique(users)
  user_idx = np.searchsorted(user_ids, users).astype(np.int32)

  order = np.lexsort((movie_idx, ts, user_idx))
  user_idx, movie_idx = user_idx[order], movie_idx[order]
  ratings, ts = ratings[order].astype(np.float32), ts[order].astype(np.int64)
  offsets = np.zeros(user_ids.size + 1, dtype=np.int64)
  np.cumsum(np.bincount(user_idx, minlength=user_ids.size), out=offsets[1:])
  popularity = np.bincount(movie_idx, minlength=kept_movie_ids.size).astype(np.int64)

  catalog = Catalog(
      movie_ids=kept_movie_ids.astype(np.int64),
      titles=tuple(raw.titles[i] for i in raw_rows),
      genres=tuple(raw.genres[i] for i in raw_rows),
      descriptions=tuple(raw.descriptions[i] for i in raw_rows),
      popularity=popularity,
  )
  rating_table = Ratings(user_idx=user_idx, movie_idx=movie_idx, rating=ratings, timestamp=ts,
                         user_offsets=offsets)
  report = dataclasses.replace(
      raw.report, duplicate_ratings=duplicates, raw_users=int(np.unique(raw.user_ids).size),
      raw_movies=int(raw.movie_ids.size), raw_ratings=int(raw.ratings.size),
      min_item_ratings=min_item_ratings, min_user_ratings=min_user_ratings)
  return MovieLensData(name=name, user_ids=user_ids.astype(np.int64), catalog=catalog,
                       ratings=rating_table, synthetic=synthetic, report=report)
