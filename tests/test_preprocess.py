"""Pruning (movies, then users; one pass), de-duplication, sorting and indexing."""

import numpy as np
import pytest

from persoma.data import preprocess
from persoma.data.structures import LoadReport, RawData


def _raw(rows, movie_ids=None):
  rows = np.array(rows, dtype=np.float64).reshape(-1, 4)
  movie_ids = np.array(sorted(set(rows[:, 1].astype(int))) if movie_ids is None else movie_ids)
  return RawData(movie_ids=movie_ids.astype(np.int64),
                 titles=tuple(f"m{m}" for m in movie_ids),
                 genres=tuple(("Drama",) for _ in movie_ids),
                 descriptions=tuple("" for _ in movie_ids),
                 user_ids=rows[:, 0].astype(np.int64), rating_movie_ids=rows[:, 1].astype(np.int64),
                 ratings=rows[:, 2].astype(np.float32), timestamps=rows[:, 3].astype(np.int64),
                 report=LoadReport())


def test_movies_pruned_before_users_single_pass():
  # Movie 9 has 1 rating (pruned at min_item=2). User 3 then has 1 rating left (< 2): dropped.
  # Movie 2 loses user 3's rating and keeps only 1 rating, but pruning is not iterated.
  rows = [(1, 1, 5, 1), (1, 2, 4, 2), (2, 1, 3, 1), (2, 3, 2, 2), (4, 3, 2, 5), (4, 1, 1, 1),
          (3, 2, 4, 1), (3, 9, 4, 2)]
  data = preprocess.build_dataset(_raw(rows), "t", min_item_ratings=2, min_user_ratings=2)
  assert data.user_ids.tolist() == [1, 2, 4]
  assert data.catalog.movie_ids.tolist() == [1, 2, 3]
  assert data.catalog.popularity.tolist() == [3, 1, 2]
  assert len(data.ratings) == 6 and data.report.raw_ratings == 8


def test_sorted_by_user_time_movie_with_offsets():
  rows = [(5, 2, 1, 30), (5, 1, 2, 10), (5, 3, 3, 10), (1, 3, 4, 99), (1, 1, 5, 7)]
  data = preprocess.build_dataset(_raw(rows), "t", min_item_ratings=0, min_user_ratings=0)
  r = data.ratings
  assert data.user_ids.tolist() == [1, 5]
  assert r.user_offsets.tolist() == [0, 2, 5]
  assert r.timestamp.tolist() == [7, 99, 10, 10, 30]
  assert data.catalog.movie_ids[r.movie_idx].tolist() == [1, 3, 1, 3, 2]
  assert r.rating.tolist() == [5, 4, 2, 3, 1]
  assert r.user_idx.dtype == np.int32 and r.movie_idx.dtype == np.int32
  assert r.timestamp.dtype == np.int64 and r.rating.dtype == np.float32


def test_duplicates_keep_latest_and_are_counted():
  rows = [(1, 1, 2, 5), (1, 1, 4, 9), (1, 2, 3, 1)]
  data = preprocess.build_dataset(_raw(rows), "t", min_item_ratings=0, min_user_ratings=0)
  assert data.report.duplicate_ratings == 1
  assert sorted(data.ratings.rating.tolist()) == [3.0, 4.0]


def test_catalog_keeps_only_rated_movies_in_id_order():
  rows = [(1, 30, 4, 1), (1, 10, 4, 2)]
  raw = _raw(rows, movie_ids=[30, 20, 10])
  data = preprocess.build_dataset(raw, "t", min_item_ratings=0, min_user_ratings=0)
  assert data.catalog.movie_ids.tolist() == [10, 30]
  assert data.catalog.titles == ("m10", "m30")


def test_everything_pruned_is_a_clear_error():
  with pytest.raises(ValueError, match="no ratings left after pruning"):
    preprocess.build_dataset(_raw([(1, 1, 4, 1)]), "t", min_item_ratings=5, min_user_ratings=1)


def test_tiny_fixture_invariants(tiny_data):
  r = tiny_data.ratings
  assert r.user_offsets[0] == 0 and r.user_offsets[-1] == len(r)
  assert np.all(np.diff(r.user_idx) >= 0)
  for u in range(tiny_data.num_users):
    assert np.all(r.user_idx[r.user_slice(u)] == u)
  assert tiny_data.catalog.popularity.sum() == len(r)
  np.testing.assert_array_equal(np.bincount(r.movie_idx), tiny_data.catalog.popularity)
