"""The label rule: qualifying counts, strict thresholds, top-3, deterministic ties, sources."""

import numpy as np
import pytest

from persoma.data import genres, labels
from persoma.data.labels import LabelConfig


def _stats(**per_genre):
  """per_genre: name -> list of ratings."""
  sums = np.zeros(19)
  counts = np.zeros(19, dtype=np.int64)
  for name, rs in per_genre.items():
    i = genres.GENRE_INDEX[name.replace("_", "-")]
    sums[i], counts[i] = sum(rs), len(rs)
  return sums, counts


def test_thresholds_are_strict_and_counts_required():
  s, c = _stats(Action=[4, 3, 3.5], Comedy=[5, 5], Drama=[3, 3, 3], Horror=[1, 2, 4, 5])
  lab = labels.labels_from_stats(s, c)
  # Action mean 3.5 is not > 3.5; Comedy has only 2 ratings; Drama, Horror 3.0 are not < 3.0.
  assert lab.liked == () and lab.disliked == ()
  s, c = _stats(Action=[4, 3, 3.6], Horror=[1, 2, 3, 5.9])
  lab = labels.labels_from_stats(s, c)
  assert lab.liked == ("Action",) and lab.disliked == ("Horror",)


def test_top_three_best_first_with_deterministic_ties():
  s, c = _stats(War=[5, 5, 5], Western=[5, 5, 5, 5], Action=[5, 5, 5], Drama=[4, 4, 4],
                Comedy=[4, 5, 4], Sci_Fi=[1, 1, 1], Crime=[2, 2, 2], Horror=[1, 1, 1, 1],
                Romance=[2, 2, 2, 2.5])
  lab = labels.labels_from_stats(s, c)
  # Mean 5 for three genres: the larger count first, then canonical order.
  assert lab.liked == ("Western", "Action", "War")
  assert lab.disliked == ("Horror", "Sci-Fi", "Crime")


def test_config_changes_the_rule():
  s, c = _stats(Action=[4, 4], Drama=[2, 2])
  assert labels.labels_from_stats(s, c).empty
  lab = labels.labels_from_stats(s, c, LabelConfig(min_genre_count=2, max_liked=1))
  assert lab.liked == ("Action",) and lab.disliked == ("Drama",)
  lab = labels.labels_from_stats(s, c, LabelConfig(min_genre_count=2, like_threshold=4.0))
  assert lab.liked == ()


def test_invalid_config():
  with pytest.raises(ValueError, match="source"):
    LabelConfig(source="future")
  with pytest.raises(ValueError, match="dislike_threshold"):
    LabelConfig(like_threshold=2.0, dislike_threshold=3.0)


def test_multi_genre_movie_counts_for_each_genre(tiny_data):
  pos = np.arange(len(tiny_data.ratings))[:30]
  sums, counts = labels.genre_stats(tiny_data, pos)
  gm = genres.genre_matrix(tiny_data.catalog.genres)
  movie = tiny_data.ratings.movie_idx[pos]
  assert counts.sum() == gm[movie].sum()
  expected = sum(tiny_data.ratings.rating[p] * gm[tiny_data.ratings.movie_idx[p]] for p in pos)
  np.testing.assert_allclose(sums, expected, rtol=1e-6)


def test_vectorised_labels_equal_per_user_rule(tiny_data):
  fast = labels.user_labels(tiny_data)
  assert len(fast) == tiny_data.num_users
  for u in range(tiny_data.num_users):
    assert fast[u] == labels.labels_for_positions(tiny_data, tiny_data.user_positions(u))
  assert sum(not x.empty for x in fast) > tiny_data.num_users // 2


def test_labels_on_real_ml1m(ml1m):
  labs = labels.user_labels(ml1m)
  liked = np.mean([len(x.liked) for x in labs])
  disliked = np.mean([len(x.disliked) for x in labs])
  # Most ml-1m users rate generously: many liked, fewer disliked genres.
  assert 2.0 < liked <= 3.0 and 0.3 < disliked < 1.5
  assert all(not set(x.liked) & set(x.disliked) for x in labs)
