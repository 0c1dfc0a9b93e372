"""The synthetic MovieLens-like generator: deterministic, labelled synthetic, learnable labels."""

import numpy as np
import pytest

from persoma import baselines
from persoma.data import genres, labels, load_dataset, synthetic


def test_default_dataset_is_named_and_flagged_synthetic():
  data = load_dataset("synthetic")
  assert data.name == "synthetic" and data.synthetic
  assert data.report.source == "synthetic"
  assert 500 <= data.num_users <= 600 and 300 <= len(data.catalog) <= 400
  assert np.diff(data.ratings.user_offsets).min() >= 20
  assert data.catalog.popularity.min() >= 20


def test_same_seed_same_data_other_seed_differs():
  a = load_dataset("synthetic", num_users=50, num_movies=60, min_item_ratings=1, seed=3)
  b = load_dataset("synthetic", num_users=50, num_movies=60, min_item_ratings=1, seed=3)
  c = load_dataset("synthetic", num_users=50, num_movies=60, min_item_ratings=1, seed=4)
  assert a.catalog.titles == b.catalog.titles and a.catalog.descriptions == b.catalog.descriptions
  np.testing.assert_array_equal(a.ratings.rating, b.ratings.rating)
  np.testing.assert_array_equal(a.ratings.timestamp, b.ratings.timestamp)
  assert a.catalog.titles != c.catalog.titles


def test_catalog_is_plausible(tiny_data):
  cat = tiny_data.catalog
  assert len(set(cat.titles)) == len(cat.titles)
  assert all(t.endswith(")") and "(" in t for t in cat.titles)
  assert all(1 <= len(g) <= 3 and set(g) <= set(genres.GENRES) for g in cat.genres)
  # Descriptions mention genre-typical words of the movie's first genre.
  for desc, gs in zip(cat.descriptions, cat.genres):
    words = synthetic._WORDS[gs[0]]  # pylint: disable=protected-access
    assert any(w in desc for w in words), (desc, gs)
  r = tiny_data.ratings
  assert set(np.unique(r.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
  # Timestamps strictly increase within each user.
  for u in range(tiny_data.num_users):
    assert np.all(np.diff(r.timestamp[r.user_slice(u)]) > 0)


def test_labels_are_learnable_from_history():
  data = load_dataset("synthetic", num_users=200, num_movies=150, seed=1)
  labs = labels.user_labels(data)
  assert np.mean([len(x.liked) for x in labs]) > 1.5
  assert np.mean([len(x.disliked) for x in labs]) > 0.5
  rule = baselines.evaluate_baseline("rule", data, split="all", history_size=50)
  counting = baselines.evaluate_baseline("counting", data, split="all", history_size=50)
  # A longer shown history says more about the label: the rule on 50 items does well.
  assert rule["f1"] > 0.6 > counting["f1"]
  assert rule["synthetic"] is True and rule["dataset"] == "synthetic"


def test_bad_config():
  with pytest.raises(ValueError, match="min_ratings_per_user"):
    synthetic.SyntheticConfig(min_ratings_per_user=80, mean_ratings_per_user=10)
  with pytest.raises(TypeError):
    load_dataset("synthetic", not_a_field=1)
