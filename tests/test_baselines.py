"""Counting and rule baselines."""

import numpy as np
import pytest

from persoma import baselines
from persoma.data import genres, labels


def test_counting_most_and_least_frequent(tiny_data):
  pos = tiny_data.user_positions(3)[:12]
  pred = baselines.counting_prediction(tiny_data, pos)
  _, counts = labels.genre_stats(tiny_data, pos)
  liked_c = [counts[genres.GENRE_INDEX[g]] for g in pred.liked]
  disliked_c = [counts[genres.GENRE_INDEX[g]] for g in pred.disliked]
  present = counts[counts > 0]
  assert len(pred.liked) == min(3, present.size)
  assert liked_c == sorted(present, reverse=True)[:len(liked_c)]
  assert all(c > 0 for c in disliked_c)
  assert not set(pred.liked) & set(pred.disliked)
  others = [counts[i] for i in range(19) if counts[i] > 0 and genres.GENRES[i] not in pred.liked]
  assert disliked_c == sorted(others)[:len(disliked_c)]


def test_rule_on_whole_history_reproduces_labels_exactly(tiny_data):
  longest = int(np.diff(tiny_data.ratings.user_offsets).max())
  res = baselines.evaluate_baseline("rule", tiny_data, split="all", history_size=longest)
  assert res["f1"] == pytest.approx(1.0) and res["precision"] == pytest.approx(1.0)
  assert res["users"] > 0 and res["synthetic"] is True


def test_rule_improves_with_history(tiny_data):
  small = baselines.evaluate_baseline("rule", tiny_data, split="all", history_size=5)
  big = baselines.evaluate_baseline("rule", tiny_data, split="all", history_size=25)
  assert big["f1"] > small["f1"]


def test_all_classes_has_recall_one_and_precision_equal_to_prevalence(tiny_data):
  from persoma.data.examples import build_examples
  from persoma.metrics import verbalizer
  res = baselines.evaluate_baseline("all", tiny_data, split="all", history_size=5)
  truth = verbalizer.indicator_matrix(
      [(ex.liked, ex.disliked) for ex in build_examples(tiny_data, split="all", history_size=5,
                                                     sampler="recency")])
  support = truth.sum(axis=0).astype(float)
  prevalence = support / len(truth)
  w = support / support.sum()
  assert res["recall"] == pytest.approx(1.0)
  assert res["precision"] == pytest.approx(float(w @ prevalence))
  assert res["f1"] == pytest.approx(float(w @ (2 * prevalence / (1 + prevalence))))
  # The history is ignored: another size scores the same users the same.
  assert baselines.evaluate_baseline("all", tiny_data, split="all", history_size=25)["f1"] == \
      pytest.approx(res["f1"])


def test_unknown_baseline():
  with pytest.raises(ValueError, match="counting, rule, all"):
    baselines.get_baseline("oracle")


def test_real_ml1m_figures_near_reference(ml1m):
  """Reference figures measured on the ml-1m test users (issue 5), with a noise margin."""
  got = {(name, n): baselines.evaluate_baseline(name, ml1m, split="test", history_size=n)["f1"]
         for name, n in [("counting", 5), ("counting", 50), ("rule", 5), ("rule", 50),
                         ("rule", 100)]}
  assert got[("counting", 5)] == pytest.approx(0.16, abs=0.04)
  assert got[("counting", 50)] == pytest.approx(0.14, abs=0.04)
  assert got[("rule", 5)] == pytest.approx(0.10, abs=0.04)
  assert got[("rule", 50)] == pytest.approx(0.54, abs=0.04)
  assert got[("rule", 100)] == pytest.approx(0.72, abs=0.04)
