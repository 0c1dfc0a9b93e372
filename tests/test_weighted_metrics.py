"""Class-weighted P/R/F1 equals scikit-learn's average='weighted' on random and real cases."""

import warnings

import numpy as np
import pytest

from conftest import require_movielens
from persoma import baselines
from persoma.data import build_examples, load_dataset
from persoma.metrics import verbalizer, weighted

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _sklearn(y_true, y_pred):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    p, r, f, _ = sklearn_metrics.precision_recall_fscore_support(
        y_true, y_pred, average="weighted", zero_division=0)
  return p, r, f


@pytest.mark.parametrize("seed", range(8))
def test_matches_sklearn_on_random_matrices(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(1, 60))
  density = rng.uniform(0.02, 0.5)
  y_true = (rng.random((n, 38)) < density).astype(np.int8)
  y_pred = (rng.random((n, 38)) < rng.uniform(0.0, 0.5)).astype(np.int8)
  y_true[:, rng.integers(0, 38, size=5)] = 0  # classes with no support
  if seed == 0:
    y_pred[:] = 0  # nothing predicted
  got = weighted.weighted_prf(y_true, y_pred)
  p, r, f = _sklearn(y_true, y_pred)
  assert got["precision"] == pytest.approx(p, abs=1e-12)
  assert got["recall"] == pytest.approx(r, abs=1e-12)
  assert got["f1"] == pytest.approx(f, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_side_scores_are_the_weighted_f1_of_each_half(seed):
  rng = np.random.default_rng(100 + seed)
  y_true = (rng.random((40, 38)) < 0.15).astype(np.int8)
  y_pred = (rng.random((40, 38)) < 0.2).astype(np.int8)
  y_pred[:, 19:] = y_true[:, 19:]  # disliked half perfect, liked half random
  got = weighted.side_scores(y_true, y_pred)
  assert got["f1_liked"] == pytest.approx(_sklearn(y_true[:, :19], y_pred[:, :19])[2])
  assert got["f1_disliked"] == pytest.approx(1.0)
  sets = weighted.score_sets([(("Drama",), ("Horror",))], [(("Drama",), ("War",))])
  assert sets["f1_liked"] == 1.0 and sets["f1_disliked"] == 0.0


def test_perfect_and_empty():
  y = np.eye(38, dtype=np.int8)
  assert weighted.weighted_prf(y, y)["f1"] == pytest.approx(1.0)
  zero = np.zeros((4, 38), dtype=np.int8)
  assert weighted.weighted_prf(zero, zero)["f1"] == 0.0
  with pytest.raises(ValueError, match="shapes"):
    weighted.weighted_prf(zero, np.zeros((3, 38)))


def _real_case():
  try:
    root = require_movielens("ml-latest-small")
    return load_dataset("movielens/latest-small", data_dir=root)
  except pytest.skip.Exception:
    return load_dataset("synthetic", num_users=150, num_movies=120)


@pytest.mark.parametrize("name", baselines.PER_EXAMPLE_BASELINES)
def test_matches_sklearn_on_real_baseline_predictions(name):
  data = _real_case()
  exs = build_examples(data, split="all", history_size=20, sampler="recency")
  predict = baselines.get_baseline(name)
  preds = [predict(data, e.positions) for e in exs]
  y_true = verbalizer.indicator_matrix([(e.liked, e.disliked) for e in exs])
  y_pred = verbalizer.indicator_matrix([(p.liked, p.disliked) for p in preds])
  got = weighted.weighted_prf(y_true, y_pred)
  p, r, f = _sklearn(y_true, y_pred)
  assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f), abs=1e-12)
  assert 0.0 < got["f1"] < 1.0


def test_score_texts_parses_then_scores():
  targets = ["Liked Genres: War. Not Liked Genres: Horror",
             "Liked Genres: Comedy, Drama. Not Liked Genres: None"]
  preds = ["Liked Genres: War, Drama. Not Liked Genres: Horror", "rubbish"]
  out = weighted.score_texts(targets, preds)
  y_t, _ = verbalizer.parse_many(targets)
  y_p, _ = verbalizer.parse_many(preds)
  _, _, f = _sklearn(y_t, y_p)
  assert out["f1"] == pytest.approx(f)
  assert out["verbalizer/unparseable"] == 1 and out["examples"] == 2
