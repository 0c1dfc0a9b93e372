"""persoma.tuned_rule: the label rule with per-side threshold, count, minimum genre count and
shrinkage fitted on train users to predict whole-history labels from N shown items."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from persoma import baselines, tuned_rule
from persoma.data import build_examples, labels, split
from persoma.data.labels import LabelConfig
from persoma.metrics import weighted
from persoma.tuned_rule import SideRule, TunedRule

def _stats(seed: int, users: int = 60):
  rng = np.random.default_rng(seed)
  counts = rng.integers(0, 7, size=(users, 19)).astype(np.float64)
  # whole-star means so that ties between genres are common
  sums = counts * rng.integers(1, 6, size=(users, 19))
  mu = np.where(counts.sum(1) > 0, sums.sum(1) / np.maximum(counts.sum(1), 1), 0.0)
  return {"sums": sums, "counts": counts, "mu": mu, "exact": np.zeros(users, bool)}


@pytest.mark.parametrize("cfg", [LabelConfig(), LabelConfig(like_threshold=3.0, max_liked=2,
                                                            dislike_threshold=3.0,
                                                            max_disliked=5, min_genre_count=1)])
def test_side_predictions_without_shrinkage_are_the_label_rule_ties_included(cfg):
  st = _stats(0)
  liked = tuned_rule.side_predictions(st, "liked", TunedRule.from_label_config(cfg).liked)
  disliked = tuned_rule.side_predictions(st, "disliked", TunedRule.from_label_config(cfg).disliked)
  capped = 0
  for u in range(len(st["mu"])):
    lab = labels.labels_from_stats(st["sums"][u], st["counts"][u], cfg)
    assert [labels.genres_lib.GENRES[i] for i in np.flatnonzero(liked[u])] == sorted(
        lab.liked, key=labels.genres_lib.GENRES.index)
    assert set(np.flatnonzero(disliked[u])) == {labels.genres_lib.GENRES.index(g)
                                                for g in lab.disliked}
    capped += len(lab.liked) == cfg.max_liked
  assert capped > 0  # the count cap, where ties are broken, is exercised


def test_shrinkage_pulls_a_genre_toward_the_users_mean():
  st = {"sums": np.array([[5.0, 8.0] + [0.0] * 17]), "counts": np.array([[1.0, 2.0] + [0.0] * 17]),
        "mu": np.array([3.0]), "exact": np.zeros(1, bool)}
  raw = tuned_rule.side_predictions(st, "liked", SideRule(3.5, 3, 1, 0.0))
  shrunk = tuned_rule.side_predictions(st, "liked", SideRule(3.5, 3, 1, 1.0))  # (5+3)/2=4, (8+3)/3=3.67
  assert raw[0, :2].tolist() == [True, True]
  assert shrunk[0, :2].tolist() == [True, True]
  strict = tuned_rule.side_predictions(st, "liked", SideRule(3.7, 3, 1, 1.0))
  assert strict[0, :2].tolist() == [True, False]


def test_shrinkage_on_the_disliked_side_and_unseen_genres_stay_unnamed():
  st = {"sums": np.array([[2.0, 5.0] + [0.0] * 17]), "counts": np.array([[1.0, 2.0] + [0.0] * 17]),
        "mu": np.array([4.5]), "exact": np.zeros(1, bool)}
  raw = tuned_rule.side_predictions(st, "disliked", SideRule(3.2, 3, 1, 0.0))
  shrunk = tuned_rule.side_predictions(st, "disliked", SideRule(3.2, 3, 1, 1.0))
  assert raw[0, :2].tolist() == [True, True]  # means 2.0 and 2.5
  assert shrunk[0, :2].tolist() == [False, True]  # (2+4.5)/2=3.25, (5+4.5)/3=3.17
  assert not shrunk[0, 2:].any()  # 0 shown movies: (0 + 4.5 * 1) / 1 = 4.5, never a candidate
  liked = tuned_rule.side_predictions(st, "liked", SideRule(3.0, 6, 1, 1.0))
  assert not liked[0, 2:].any()  # ... on either side, though 4.5 is over the threshold


def test_to_label_config_only_where_a_label_config_can_hold_the_rule():
  cfg = LabelConfig(like_threshold=3.65, dislike_threshold=2.75, max_disliked=4,
                    min_genre_count=2)
  assert TunedRule.from_label_config(cfg).to_label_config() == cfg
  with pytest.raises(ValueError, match="shrinks the means"):
    TunedRule(SideRule(3.5, 3, 3, 1.0), SideRule(3.0, 3, 3)).to_label_config()
  with pytest.raises(ValueError, match="minimum genre count per side"):
    TunedRule(SideRule(3.5, 3, 2), SideRule(3.0, 3, 3)).to_label_config()


def test_fit_keeps_the_rule_when_the_truth_is_the_rule_and_users_with_whole_histories_keep_it():
  st = _stats(1)
  cfg = LabelConfig()
  rule = TunedRule.from_label_config(cfg)
  st["truth"] = tuned_rule.predict(st, rule, rule)
  assert tuned_rule.fit(st, rule) == rule
  # a truth the rule misses (everything over 2 stars liked) is fitted better than by the rule
  st["truth"] = np.concatenate([tuned_rule.side_predictions(st, "liked", SideRule(2.0, 6, 1, 0.0)),
                                st["truth"][:, 19:]], axis=1)
  params = tuned_rule.fit(st, rule)
  assert params.liked != rule.liked and params.disliked == rule.disliked
  def f1(pred):
    return weighted.weighted_prf(st["truth"], pred)["f1"]
  assert f1(tuned_rule.predict(st, params, rule)) > f1(tuned_rule.predict(st, rule, rule))
  st["exact"][:] = True  # whole histories shown: the exact rule, whatever was fitted
  np.testing.assert_array_equal(tuned_rule.predict(st, params, rule),
                                tuned_rule.predict(st, rule, rule))


def test_fit_label_config_gives_the_best_rule_a_label_config_holds():
  st = _stats(2, users=200)
  rule = TunedRule.from_label_config(LabelConfig())
  def score(params):
    return weighted.weighted_prf(st["truth"], tuned_rule.predict(st, params, rule))["f1"]
  st["truth"] = tuned_rule.predict(st, rule, rule)
  assert tuned_rule.fit_label_config(st, rule) == rule  # the rule is its own best fit
  # a truth made with shrinkage and a different minimum count per side: fit() reproduces it,
  # fit_label_config() finds the best rule without those, which still beats the label rule
  made = TunedRule(SideRule(3.2, 4, 1, 2.0), SideRule(2.9, 3, 2, 1.0))
  st["truth"] = tuned_rule.predict(st, made, made)
  full = tuned_rule.fit(st, rule)
  assert score(full) == pytest.approx(1.0)
  plain = tuned_rule.fit_label_config(st, rule)
  assert plain.to_label_config() is not None  # expressible: no ValueError
  assert score(rule) < score(plain) < score(full)
  small = tuned_rule.Grid(liked_thresholds=(3.2,), disliked_thresholds=(2.9,), max_counts=(3, 4),
                          min_counts=(1, 2), shrinks=(0.0,))
  shared = [TunedRule(SideRule(3.2, k, c), SideRule(2.9, m, c)) for k in (3, 4) for m in (3, 4)
            for c in (1, 2)] + [rule]
  assert score(tuned_rule.fit_label_config(st, rule, small)) == pytest.approx(
      max(score(r) for r in shared))


def test_rule_tuned_baseline_fits_on_train_users_and_scores_like_the_rest(tiny_data):
  res = baselines.evaluate_baseline("rule_tuned", tiny_data, split="test", history_size=8)
  rule = baselines.evaluate_baseline("rule", tiny_data, split="test", history_size=8)
  assert res["users"] == rule["users"] > 0 and res["baseline"] == "rule_tuned"
  fitted = TunedRule(SideRule(**res["fitted"]["liked"]), SideRule(**res["fitted"]["disliked"]))
  assert fitted == tuned_rule.fit_on_train(tiny_data, history_size=8, sampler="recency")
  exs = build_examples(tiny_data, split="test", history_size=8, sampler="recency")
  want = tuned_rule.predict(tuned_rule.history_stats(tiny_data, exs), fitted,
                            TunedRule.from_label_config(LabelConfig()))
  assert res["f1"] == pytest.approx(weighted.weighted_prf(
      tuned_rule.history_stats(tiny_data, exs)["truth"], want)["f1"])
  with pytest.raises(ValueError, match="fitted on the train users"):
    baselines.get_baseline("rule_tuned")
  with pytest.raises(ValueError, match="validation or test split, not 'train'"):
    baselines.evaluate_baseline("rule_tuned", tiny_data, split="train", history_size=8)


def test_users_whose_whole_history_is_shown_keep_the_exact_rule(tiny_data):
  exs = build_examples(tiny_data, split="validation", history_size=10_000, sampler="recency")
  stats = tuned_rule.history_stats(tiny_data, exs)
  assert len(exs) > 0 and stats["exact"].all()
  short = tuned_rule.history_stats(tiny_data, build_examples(
      tiny_data, split="validation", history_size=10, sampler="recency"))
  assert not short["exact"].any()
  res = baselines.evaluate_baseline("rule_tuned", tiny_data, split="validation",
                                    history_size=10_000)
  assert res["f1"] == pytest.approx(1.0)  # the rule on a whole history is its target


def test_as_labels_round_trips_the_indicators():
  pred = np.zeros((2, 38), bool)
  pred[0, [0, 5]] = True
  pred[1, 19 + 2] = True
  got = tuned_rule.as_labels(pred)
  g = labels.genres_lib.GENRES
  assert got[0] == labels.UserLabels((g[0], g[5]), ()) and got[1] == labels.UserLabels((), (g[2],))


def test_no_examples_is_a_clear_error(tiny_data):
  with pytest.raises(ValueError, match="no examples"):
    tuned_rule.history_stats(tiny_data, [])


@pytest.mark.parametrize("field,value,match", [
    ("max_count", 0, "max_count must be >= 1"), ("min_count", 0, "min_count must be >= 1"),
    ("shrink", -1.0, "shrink must be >= 0"), ("shrink", float("nan"), "shrink must be >= 0"),
    ("threshold", float("nan"), "threshold must be finite")])
def test_a_side_rule_that_cannot_label_is_a_clear_error(field, value, match):
  args = dict(threshold=3.5, max_count=3, min_count=2, shrink=0.0)
  with pytest.raises(ValueError, match=match):
    SideRule(**dict(args, **{field: value}))


def test_the_grid_reaches_every_genre_and_its_key_names_every_searched_value():
  grid = tuned_rule.Grid()
  assert max(grid.max_counts) == labels.genres_lib.NUM_GENRES
  assert len(grid.points("liked")) == (len(grid.liked_thresholds) * len(grid.max_counts)
                                       * len(grid.min_counts) * len(grid.shrinks))
  assert grid.key() != tuned_rule.Grid(max_counts=(1, 2, 3)).key()


def test_the_fit_reads_only_the_train_users(tiny_data):
  """Reversing the stars of every validation and test user changes what a fit on them gives,
  and leaves the fit on the train users as it was."""
  held_out = np.isin(np.asarray(tiny_data.ratings.user_idx), np.concatenate([
      split.users_in_split(tiny_data.user_ids, s) for s in ("validation", "test")]))
  assert held_out.any() and not held_out.all()
  flipped = dataclasses.replace(tiny_data, ratings=dataclasses.replace(
      tiny_data.ratings, rating=np.where(held_out, 6.0 - tiny_data.ratings.rating,
                                         tiny_data.ratings.rating).astype(np.float32)))
  def fit_on(data, s):
    exs = build_examples(data, split=s, history_size=8, sampler="recency")
    return tuned_rule.fit(tuned_rule.history_stats(data, exs),
                          TunedRule.from_label_config(LabelConfig()))
  assert fit_on(flipped, "test") != fit_on(tiny_data, "test")
  assert (tuned_rule.fit_on_train(flipped, history_size=8, sampler="recency")
          == tuned_rule.fit_on_train(tiny_data, history_size=8, sampler="recency"))
