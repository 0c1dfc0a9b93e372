"""persoma.metrics.bootstrap: the class-weighted F1 under redrawn users, its intervals and the
paired gain of one predictor over others."""

from __future__ import annotations

import numpy as np
import pytest

from persoma.metrics import bootstrap, weighted

C = 38


def _data(users: int, flip: float, seed: int = 0):
  rng = np.random.default_rng(seed)
  y = (rng.random((users, C)) < 0.15).astype(int)
  y[:, 0] = 1
  return y, rng


def _noisy(y, rng, flip):
  return np.where(rng.random(y.shape) < flip, 1 - y, y)


def test_weighted_f1_equals_the_metric_on_the_drawn_rows():
  y, rng = _data(60, 0.1)
  pred = _noisy(y, rng, 0.1)
  pred[:, 5] = 0  # a class never predicted
  w = bootstrap.resample_weights(60, 5, seed=3)
  got = bootstrap.weighted_f1(y, pred, w)
  for row, f1 in zip(w, got):
    idx = np.repeat(np.arange(60), row.astype(int))
    assert f1 == pytest.approx(weighted.weighted_prf(y[idx], pred[idx])["f1"], abs=1e-12)
  ones = np.ones((1, 60))
  assert bootstrap.weighted_f1(y, pred, ones)[0] == pytest.approx(
      weighted.weighted_prf(y, pred)["f1"], abs=1e-12)


def test_resample_weights_draw_every_user_count_and_follow_the_seed():
  w = bootstrap.resample_weights(40, 300, seed=1)
  assert w.shape == (300, 40) and (w.sum(axis=1) == 40).all()
  assert np.array_equal(w, bootstrap.resample_weights(40, 300, seed=1))
  assert not np.array_equal(w, bootstrap.resample_weights(40, 300, seed=2))
  assert abs(w.mean() - 1.0) < 1e-12 and (w == 0).mean() == pytest.approx(np.exp(-1), abs=0.02)


def test_the_interval_holds_the_figure_and_narrows_with_more_users():
  widths = {}
  for users in (50, 800):
    y, rng = _data(users, 0.1, seed=users)
    pred = _noisy(y, rng, 0.1)
    f1 = weighted.weighted_prf(y, pred)["f1"]
    lo, hi = bootstrap.interval(bootstrap.weighted_f1(
        y, pred, bootstrap.resample_weights(users, 1000)))
    assert lo < f1 < hi
    widths[users] = hi - lo
  assert widths[800] < widths[50] / 2.5  # about sqrt(16) = 4 times narrower


def test_paired_gain_of_a_better_predictor_and_of_a_copy():
  y, rng = _data(300, 0.1)
  good, worse = _noisy(y, rng, 0.05), [_noisy(y, rng, 0.12) for _ in range(3)]
  w = bootstrap.resample_weights(300, 1000)
  g = bootstrap.paired_gain(y, good, worse, w)
  plain = weighted.weighted_prf(y, good)["f1"] - np.mean(
      [weighted.weighted_prf(y, o)["f1"] for o in worse])
  assert g["gain"] == pytest.approx(plain, abs=1e-12) and g["gain"] > 0
  assert 0 < g["gain_ci"][0] < g["gain"] < g["gain_ci"][1] and g["gain_above_0"] == 1.0
  mine = bootstrap.weighted_f1(y, good, w)
  assert g["f1_ci"] == bootstrap.interval(mine)
  same = bootstrap.paired_gain(y, good, [good], w)
  assert same["gain"] == 0 and same["gain_ci"] == [0.0, 0.0] and same["gain_above_0"] == 0


def test_bad_input_is_refused():
  y, _ = _data(10, 0.1)
  with pytest.raises(ValueError, match="equal"):
    bootstrap.weighted_f1(y, y[:, :5], np.ones((2, 10)))
  with pytest.raises(ValueError, match=r"weights \[R, U\], got \(2, 9\)"):
    bootstrap.weighted_f1(y, y, np.ones((2, 9)))
  with pytest.raises(ValueError, match="at least one user"):
    bootstrap.resample_weights(0, 10)
  with pytest.raises(ValueError, match="level"):
    bootstrap.interval(np.ones(5), level=1.5)
  with pytest.raises(ValueError, match="no predictors"):
    bootstrap.paired_gain(y, y, [], np.ones((2, 10)))
