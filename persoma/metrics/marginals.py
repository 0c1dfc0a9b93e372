"""Label marginals over several decodes, and a decision threshold tuned for weighted F1.

Greedy decoding writes the single most likely answer; it cannot trade precision for recall,
and class-weighted F1 rewards recall more than a most-likely set gives (the probes of
`benchmarks/stats_probe.py` gain most from a tuned threshold). With K decodes per user (beam
search) and their sequence log-probabilities, each of the 38 liked/disliked classes gets a
marginal: the probability mass, renormalised over the K decodes, of the decodes that name it.
A class is predicted when its marginal reaches a threshold tau; tau is chosen on validation
users (`tune_threshold`) and applied unchanged to the test users.

Beam decodes are distinct and concentrate on the most likely answers, so their renormalised mass
overstates the likely classes and misses the rest. K independent samples (temperature 1) give
instead the Monte Carlo estimate of the model's own marginal: the fraction of samples naming the
class (`sample_marginals`; repeated samples count each time, so no renormalisation by score).

Class-weighted F1 is the support-weighted mean of per-class F1s, and each class's F1 depends only
on its own column, so separate cuts for the liked and the disliked half can be tuned one half at
a time (`tune_side_thresholds`); the combined cut pair is then the best pair on the grid.

Shapes: `B` users, `K` decodes per user, `C` classes (38: liked genres, then disliked).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from persoma.data import genres as genres_lib
from persoma.metrics import weighted

#: 0.01 .. 0.04, then 0.05 .. 0.95 in steps of 0.05 (short histories want very low cuts).
DEFAULT_GRID = (0.01, 0.02, 0.03, 0.04) + tuple(round(0.05 * i, 2) for i in range(1, 20))


def decode_weights(log_probs: np.ndarray) -> np.ndarray:
  """`[B, K]` sequence log-probabilities -> `[B, K]` weights summing to 1 per row.

  Decodes scored at or below -1e6 (beam search's placeholder for an unfinished slot) get
  weight 0; a row with no valid decode raises.
  """
  lp = np.asarray(log_probs, dtype=np.float64)
  if lp.ndim != 2:
    raise ValueError(f"log_probs must be [B, K], got shape {lp.shape}")
  if np.isnan(lp).any():
    rows = sorted(set(np.argwhere(np.isnan(lp))[:, 0].tolist()))
    raise ValueError(f"log_probs has NaN in rows {rows[:10]}")
  valid = lp > -1e6
  empty = np.flatnonzero(~valid.any(axis=1))
  if empty.size:
    raise ValueError(f"no valid decode (all scores <= -1e6) in rows {empty[:10].tolist()}")
  shifted = np.where(valid, lp - np.max(np.where(valid, lp, -np.inf), axis=1, keepdims=True),
                     -np.inf)
  w = np.exp(shifted)
  return w / w.sum(axis=1, keepdims=True)


def label_marginals(indicators: np.ndarray, log_probs: np.ndarray) -> np.ndarray:
  """`indicators [B, K, C]` (0/1: decode k names class c) and `log_probs [B, K]` -> `[B, C]`
  marginal probability of each class under the renormalised decodes."""
  ind = np.asarray(indicators, dtype=np.float64)
  if ind.ndim != 3 or ind.shape[:2] != np.shape(log_probs):
    raise ValueError(f"indicators {ind.shape} must be [B, K, C] with [B, K] = log_probs "
                     f"{np.shape(log_probs)}")
  return np.einsum("bk,bkc->bc", decode_weights(log_probs), ind)


def sample_marginals(indicators: np.ndarray) -> np.ndarray:
  """`indicators [B, K, C]` of K independent samples per row -> `[B, C]` fraction of the
  samples naming each class (the Monte Carlo estimate of the model's marginal)."""
  ind = np.asarray(indicators, dtype=np.float64)
  if ind.ndim != 3 or ind.shape[1] < 1:
    raise ValueError(f"indicators must be [B, K, C] with K >= 1, got shape {ind.shape}")
  return ind.mean(axis=1)


def check_threshold(tau: float | str) -> float:
  """A cut in (0, 1], from a number or its text (a flag value); raises naming the bad value."""
  try:
    value = float(tau)
  except (TypeError, ValueError):
    raise ValueError(f"threshold must be a number in (0, 1], got {tau!r}") from None
  if not 0.0 < value <= 1.0:
    raise ValueError(f"threshold must be in (0, 1], got {value}")
  return value


def threshold(marginals: np.ndarray, tau: float) -> np.ndarray:
  """`[B, C]` marginals -> `[B, C]` bool predictions (marginal >= tau)."""
  return np.asarray(marginals) >= check_threshold(tau) - 1e-12


def tune_threshold(marginals: np.ndarray, y_true: np.ndarray,
                   grid: Sequence[float] = DEFAULT_GRID) -> tuple[float, dict[float, float]]:
  """The tau in `grid` with the best weighted F1 on `(marginals, y_true)`, and F1 per tau.

  Ties go to the tau nearest 0.5 (then the larger), so a flat curve keeps the usual cut.
  """
  if not len(grid):
    raise ValueError("empty threshold grid")
  curve = {float(t): weighted.weighted_prf(y_true, threshold(marginals, t))["f1"] for t in grid}
  best = max(curve.values())
  ties = [t for t, f in curve.items() if f >= best - 1e-12]
  return min(ties, key=lambda t: (abs(t - 0.5), -t)), curve


def threshold_sides(marginals: np.ndarray, tau_liked: float, tau_disliked: float) -> np.ndarray:
  """`[B, 38]` marginals -> `[B, 38]` bool predictions, the liked half cut at `tau_liked` and
  the disliked half at `tau_disliked`."""
  m = np.asarray(marginals)
  half = genres_lib.NUM_GENRES
  if m.ndim != 2 or m.shape[1] != 2 * half:
    raise ValueError(f"per-side cuts need [B, {2 * half}] marginals, got shape {m.shape}")
  return np.concatenate([threshold(m[:, :half], tau_liked),
                         threshold(m[:, half:], tau_disliked)], axis=1)


def tune_side_thresholds(marginals: np.ndarray, y_true: np.ndarray,
                         grid: Sequence[float] = DEFAULT_GRID) -> tuple[float, float, float]:
  """`(tau_liked, tau_disliked, weighted F1 over all 38 classes at that pair)`: each half's cut
  is `tune_threshold` on that half's classes (ties as there)."""
  m, y = np.asarray(marginals), np.asarray(y_true)
  half = genres_lib.NUM_GENRES
  if m.shape != y.shape or m.ndim != 2 or m.shape[1] != 2 * half:
    raise ValueError(f"marginals {m.shape} and y_true {y.shape} must both be [B, {2 * half}]")
  tau_l, _ = tune_threshold(m[:, :half], y[:, :half], grid)
  tau_d, _ = tune_threshold(m[:, half:], y[:, half:], grid)
  return tau_l, tau_d, weighted.weighted_prf(y, threshold_sides(m, tau_l, tau_d))["f1"]
