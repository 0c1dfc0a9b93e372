"""Label marginals over K decodes and the validation-tuned threshold (`persoma.metrics.marginals`)."""

import numpy as np
import pytest

from persoma.metrics import marginals


def test_weights_are_a_softmax_over_valid_decodes():
  lp = np.array([[np.log(0.2), np.log(0.6), -1e7], [0.0, 0.0, 0.0]])
  w = marginals.decode_weights(lp)
  np.testing.assert_allclose(w[0], [0.25, 0.75, 0.0])
  np.testing.assert_allclose(w[1], [1 / 3] * 3)


def test_weights_reject_rows_without_a_valid_decode_and_nan():
  with pytest.raises(ValueError, match=r"rows \[1\]"):
    marginals.decode_weights(np.array([[0.0, -1.0], [-1e7, -1e7]]))
  with pytest.raises(ValueError, match="NaN in rows"):
    marginals.decode_weights(np.array([[0.0, np.nan]]))
  with pytest.raises(ValueError, match=r"\[B, K\]"):
    marginals.decode_weights(np.zeros(3))


def test_marginal_is_the_mass_of_the_decodes_naming_a_class():
  # 1 user, 3 decodes with probabilities 0.5, 0.3, 0.2 (already normalised), 3 classes.
  ind = np.array([[[1, 0, 0], [1, 1, 0], [0, 1, 1]]])
  lp = np.log(np.array([[0.5, 0.3, 0.2]]))
  np.testing.assert_allclose(marginals.label_marginals(ind, lp), [[0.8, 0.5, 0.2]])
  with pytest.raises(ValueError, match=r"\[B, K, C\]"):
    marginals.label_marginals(ind[:, :2], lp)


def test_sample_marginal_is_the_fraction_of_samples_naming_a_class():
  # 1 user, 4 samples; a repeated sample counts each time (no renormalisation by score).
  ind = np.array([[[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]])
  np.testing.assert_allclose(marginals.sample_marginals(ind), [[0.75, 0.5, 0.0]])
  # Beam-style renormalisation by score would weigh them differently.
  lp = np.log(np.array([[0.1, 0.1, 0.1, 0.7]]))
  assert not np.allclose(marginals.label_marginals(ind, lp), marginals.sample_marginals(ind))
  with pytest.raises(ValueError, match=r"\[B, K, C\] with K >= 1"):
    marginals.sample_marginals(ind[0])
  with pytest.raises(ValueError, match=r"\[B, K, C\] with K >= 1"):
    marginals.sample_marginals(np.zeros((2, 0, 3)))


def test_threshold_is_inclusive_and_checked():
  m = np.array([[0.3, 0.29999999, 0.7]])
  assert marginals.threshold(m, 0.3).tolist() == [[True, False, True]]
  for bad in (0.0, 1.5):
    with pytest.raises(ValueError, match="threshold"):
      marginals.threshold(m, bad)
  assert marginals.check_threshold("0.25") == 0.25
  with pytest.raises(ValueError, match="number in.*'abc'"):
    marginals.check_threshold("abc")


def test_tuning_picks_the_cut_with_the_best_weighted_f1():
  # Every user truly has class 0; the model is unsure (marginal 0.3), so a cut at 0.5 misses
  # it everywhere and any cut <= 0.3 finds it. Class 1 is noise at 0.2 (never true).
  y = np.array([[1, 0], [1, 0], [1, 0]])
  m = np.array([[0.3, 0.2], [0.3, 0.2], [0.3, 0.2]])
  tau, curve = marginals.tune_threshold(m, y, grid=(0.1, 0.25, 0.3, 0.5))
  assert curve[0.5] == 0.0 and curve[0.3] == pytest.approx(1.0)
  assert curve[0.1] == pytest.approx(1.0)  # class 1 predicted too, but it has no support
  assert tau == 0.3  # ties go to the cut nearest 0.5
  with pytest.raises(ValueError, match="empty"):
    marginals.tune_threshold(m, y, grid=())


def test_side_cuts_are_tuned_one_half_at_a_time():
  rng = np.random.default_rng(0)
  y = (rng.random((200, 38)) < 0.3).astype(int)
  y[0] = 1  # every class has support
  # Liked positives sit at 0.3 (negatives 0.1); disliked positives at 0.8 (negatives 0.5):
  # no single cut separates both halves, the pair (0.3, 0.55) separates each.
  m = np.where(y == 1, 0.3, 0.1)
  m[:, 19:] = np.where(y[:, 19:] == 1, 0.8, 0.5)
  tau_l, tau_d, f1 = marginals.tune_side_thresholds(m, y)
  assert (tau_l, tau_d) == (0.3, 0.55) and f1 == pytest.approx(1.0)
  _, curve = marginals.tune_threshold(m, y)
  assert max(curve.values()) < 0.95
  pred = marginals.threshold_sides(m, tau_l, tau_d)
  np.testing.assert_array_equal(pred, y.astype(bool))
  with pytest.raises(ValueError, match=r"\[B, 38\]"):
    marginals.tune_side_thresholds(m[:, :19], y[:, :19])
  with pytest.raises(ValueError, match=r"\[B, 38\] marginals"):
    marginals.threshold_sides(m[:, :20], 0.3, 0.5)
  with pytest.raises(ValueError, match="threshold must be in"):
    marginals.threshold_sides(m, 0.0, 0.5)
