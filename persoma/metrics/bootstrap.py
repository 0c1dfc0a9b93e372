"""User-level bootstrap of the class-weighted F1: how much a test figure owes to the users drawn.

The test split is one draw of users (280 on ml-1m). Redrawing as many users with replacement,
`resamples` times, and scoring each draw gives the spread a figure would have on another draw
of users from the same population (percentile interval). Scoring two predictors on the same
draws (`paired_gain`) gives the spread of their difference, which counts the users both find
hard once (two separate intervals do not). It says nothing about the spread over training
seeds.

Each draw is a row of user multiplicities `[R, U]`, so a draw is scored with three matrix
products (`weighted_f1`), equal to `weighted.weighted_prf` on the drawn users' rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def resample_weights(num_users: int, resamples: int, seed: int = 0) -> np.ndarray:
  """`[resamples, num_users]` multiplicities of `num_users` users drawn with replacement."""
  if num_users < 1 or resamples < 1:
    raise ValueError(f"need at least one user and one resample, got {num_users}, {resamples}")
  rng = np.random.default_rng(seed)
  draws = rng.integers(0, num_users, size=(resamples, num_users))
  weights = np.zeros((resamples, num_users))
  np.add.at(weights, (np.arange(resamples)[:, None], draws), 1.0)
  return weights


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """`[R]` class-weighted F1 of `[U, C]` 0/1 truth and predictions under `[R, U]` user weights
  (per-class F1 0 where undefined; classes weighted by their weighted support)."""
  t = np.asarray(y_true, dtype=np.float64)
  p = np.asarray(y_pred, dtype=np.float64)
  w = np.asarray(weights, dtype=np.float64)
  if t.shape != p.shape or t.ndim != 2 or w.ndim != 2 or w.shape[1] != t.shape[0]:
    raise ValueError(f"y_true {t.shape} and y_pred {p.shape} must be equal [U, C] shapes and "
                     f"weights [R, U], got {w.shape}")
  tp, pred, support = w @ (t * p), w @ p, w @ t  # [R, C]
  # per-class F1 = 2 tp / (pred + support); 0 where a class is neither predicted nor true
  denom = pred + support
  f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
  total = support.sum(axis=1)
  return np.divide((support * f1).sum(axis=1), total, out=np.zeros_like(total),
                   where=total > 0)


def interval(values: np.ndarray, level: float = 0.95) -> list[float]:
  """The central `level` percentile interval `[lo, hi]` of bootstrap `values`."""
  if not 0 < level < 1:
    raise ValueError(f"level must be in (0, 1), got {level}")
  tail = (1 - level) / 2 * 100
  lo, hi = np.percentile(np.asarray(values), [tail, 100 - tail])
  return [float(lo), float(hi)]


def paired_gain(y_true: np.ndarray, y_pred: np.ndarray, others: Sequence[np.ndarray],
                weights: np.ndarray, level: float = 0.95) -> dict[str, object]:
  """`y_pred`'s F1 interval and its gain over the mean F1 of `others` on the same draws:
  `{"f1_ci": [lo, hi], "gain": observed gain, "gain_ci": [lo, hi], "gain_above_0": fraction of
  draws where it gains}`."""
  if not others:
    raise ValueError("no predictors to compare with")
  mine = weighted_f1(y_true, y_pred, weights)
  theirs = np.mean([weighted_f1(y_true, o, weights) for o in others], axis=0)
  ones = np.ones((1, len(y_true)))
  gain = float(weighted_f1(y_true, y_pred, ones)[0]
               - np.mean([weighted_f1(y_true, o, ones)[0] for o in others]))
  return {"f1_ci": interval(mine, level), "gain": gain, "gain_ci": interval(mine - theirs, level),
          "gain_above_0": float(np.mean(mine > theirs))}
