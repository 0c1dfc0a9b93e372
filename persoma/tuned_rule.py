"""The label rule tuned to predict whole-history labels from N shown items (a persoma baseline).

The targets apply the label rule (``persoma.data.labels``: a genre needs 3 movies; liked = the
top 3 with mean > 3.5, disliked = the bottom 3 with mean < 3.0) to a user's whole history, while
every method sees N sampled items. The rule on the N items (the ``rule`` baseline) is one
estimator of those targets, not the best one: fewer items carry a genre, and the means are
noisier. A :class:`TunedRule` keeps the rule's form but fits, per side, its threshold, the most
genres it names, the fewest shown movies a genre needs and a shrinkage of each genre's mean
toward the user's mean over the shown items (``(sum + k * mu) / (count + k)``), choosing from a
grid the values that score best on the train users. Users whose whole history is shown (at most
N ratings) keep the exact rule, which is their target.

Weighted F1 (``persoma.metrics.weighted``) is a support-weighted sum over the 38 classes, so the
liked and disliked halves are fitted apart. Everything here is numpy over ``[E, 19]`` arrays.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np

from persoma.data import genres as genres_lib
from persoma.data import labels as labels_lib
from persoma.data.examples import build_examples
from persoma.data.structures import MovieLensData
from persoma.metrics import verbalizer, weighted

SIDES = ("liked", "disliked")


@dataclasses.dataclass(frozen=True)
class SideRule:
  """One side of a rule: genres with at least ``min_count`` shown movies whose (shrunk) mean is
  above (liked) or below (disliked) ``threshold``, at most ``max_count`` of them, best first."""

  threshold: float
  max_count: int
  min_count: int
  shrink: float = 0.0

  def __post_init__(self):
    if not np.isfinite(self.threshold):
      raise ValueError(f"SideRule.threshold must be finite, got {self.threshold}")
    if self.max_count < 1:
      raise ValueError(f"SideRule.max_count must be >= 1, got {self.max_count}")
    if self.min_count < 1:  # a genre with no shown movie has no mean to compare
      raise ValueError(f"SideRule.min_count must be >= 1, got {self.min_count}")
    if not self.shrink >= 0:
      raise ValueError(f"SideRule.shrink must be >= 0, got {self.shrink}")


@dataclasses.dataclass(frozen=True)
class TunedRule:
  liked: SideRule
  disliked: SideRule

  @classmethod
  def from_label_config(cls, config: labels_lib.LabelConfig) -> "TunedRule":
    """The label rule itself (no shrinkage)."""
    return cls(SideRule(config.like_threshold, config.max_liked, config.min_genre_count),
               SideRule(config.dislike_threshold, config.max_disliked, config.min_genre_count))

  def side(self, name: str) -> SideRule:
    return getattr(self, name)

  def to_label_config(self) -> labels_lib.LabelConfig:
    """The same rule as a ``LabelConfig`` (e.g. ``PersomaDataConfig.shown_label_config``), which
    has no shrinkage and one minimum genre count: ValueError if this rule needs either, or (from
    ``LabelConfig``) if its disliked threshold is above its liked one."""
    if self.liked.shrink or self.disliked.shrink:
      raise ValueError(f"{self} shrinks the means, which a LabelConfig cannot express")
    if self.liked.min_count != self.disliked.min_count:
      raise ValueError(f"{self} needs a different minimum genre count per side, which a "
                       "LabelConfig cannot express")
    return labels_lib.LabelConfig(
        like_threshold=self.liked.threshold, dislike_threshold=self.disliked.threshold,
        max_liked=self.liked.max_count, max_disliked=self.disliked.max_count,
        min_genre_count=self.liked.min_count)


@dataclasses.dataclass(frozen=True)
class Grid:
  """The values searched per side (every combination; the label rule wins ties). The sides are
  fitted apart, so a genre can be named on both (liked over 3.2, disliked under 3.3)."""

  liked_thresholds: tuple[float, ...] = tuple(np.round(np.arange(3.0, 4.001, 0.05), 2))
  disliked_thresholds: tuple[float, ...] = tuple(np.round(np.arange(2.5, 3.501, 0.05), 2))
  # up to every genre: at N=5 and 10 the fit chose 6, the largest count of the first grid
  max_counts: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 19)
  min_counts: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
  shrinks: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)

  def key(self) -> str:
    """The searched values as stable text (part of a `rule_tuned` run's identity)."""
    return "; ".join(f"{f.name}={[float(v) for v in getattr(self, f.name)]}"
                     for f in dataclasses.fields(self))

  def points(self, side: str) -> list[SideRule]:
    thresholds = self.liked_thresholds if side == "liked" else self.disliked_thresholds
    return [SideRule(float(t), int(k), int(c), float(s)) for t, k, c, s in
            itertools.product(thresholds, self.max_counts, self.min_counts, self.shrinks)]


def history_stats(data: MovieLensData, examples: Sequence) -> dict[str, np.ndarray]:
  """Per example: shown rating ``sums`` and ``counts`` ``[E, 19]``, the shown mean rating
  ``mu [E]``, ``exact [E]`` (the whole history is shown) and the targets ``truth [E, 38]``."""
  if not examples:
    raise ValueError("no examples to compute history statistics of")
  sums, counts, mu, exact = [], [], [], []
  for ex in examples:
    s, c = labels_lib.genre_stats(data, ex.positions)
    sums.append(s)
    counts.append(c)
    mu.append(float(data.ratings.rating[ex.positions].mean()))
    exact.append(len(ex.positions) == len(data.user_positions(ex.user_index)))
  truth = verbalizer.indicator_matrix([(ex.liked, ex.disliked) for ex in examples])
  return {"sums": np.stack(sums), "counts": np.stack(counts).astype(np.float64),
          "mu": np.asarray(mu), "exact": np.asarray(exact), "truth": truth.astype(bool)}


def _ranking(stats: dict[str, np.ndarray], side: str, shrink: float
             ) -> tuple[np.ndarray, np.ndarray]:
  """The shrunk means ``[E, 19]`` and the genres best first for one side ``[E, 19]`` (ties as
  the label rule breaks them: more shown movies first, then canonical genre order)."""
  sums, counts = stats["sums"], stats["counts"]
  denom = counts + shrink
  means = np.divide(sums + shrink * stats["mu"][:, None], denom,
                    out=np.zeros_like(sums), where=denom > 0)
  sign = -1.0 if side == "liked" else 1.0
  genre = np.broadcast_to(np.arange(sums.shape[1]), sums.shape)
  return means, np.lexsort((genre, -counts, sign * means), axis=-1)


def side_predictions(stats: dict[str, np.ndarray], side: str, rule: SideRule,
                     ranking: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
  """``[E, 19]`` bool: the genres ``rule`` names on one side, best first up to its count.
  ``ranking``: ``_ranking`` for ``rule.shrink``, when the caller already has it."""
  means, order = ranking if ranking is not None else _ranking(stats, side, rule.shrink)
  ok = stats["counts"] >= rule.min_count
  cand = ok & ((means > rule.threshold) if side == "liked" else (means < rule.threshold))
  ranked = np.take_along_axis(cand, order, axis=-1)
  keep = ranked & (np.cumsum(ranked, axis=-1) <= rule.max_count)
  out = np.zeros_like(cand)
  np.put_along_axis(out, order, keep, axis=-1)
  return out


def _side_pred(stats, side: str, rule: SideRule, exact_pred: np.ndarray,
               ranking: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
  """``rule``'s ``[E, 19]`` predictions, with ``exact_pred`` for whole-history users."""
  return np.where(stats["exact"][:, None], exact_pred,
                  side_predictions(stats, side, rule, ranking))


def predict(stats: dict[str, np.ndarray], rule: TunedRule, exact_rule: TunedRule
            ) -> np.ndarray:
  """``[E, 38]`` bool (liked then disliked genres): ``rule`` for users with a partial history,
  ``exact_rule`` (the label rule) for users whose whole history is shown."""
  return np.concatenate([_side_pred(stats, s, rule.side(s), side_predictions(
      stats, s, exact_rule.side(s))) for s in SIDES], axis=1)


def _side_score(truth: np.ndarray, pred: np.ndarray) -> float:
  """Support-weighted sum of per-class F1 over one side (not normalised: the sides add up)."""
  _, _, f1, support = weighted.per_class_prf(truth, pred)
  return float(support @ f1)


def _best_side(stats, side: str, points: Sequence[SideRule], start: SideRule | None,
               exact_rule: TunedRule) -> tuple[SideRule | None, float]:
  """Of ``start`` (which wins ties; None: no start) and ``points``, the rule scoring best on
  one side of ``stats``, and its score (-inf where there is neither)."""
  g = genres_lib.NUM_GENRES
  j = SIDES.index(side)
  truth = stats["truth"][:, j * g:(j + 1) * g]
  exact = side_predictions(stats, side, exact_rule.side(side))
  candidates = ([start] if start is not None else []) + list(points)
  # one ranking per shrinkage, shared by the points
  rankings = {k: _ranking(stats, side, k) for k in {p.shrink for p in candidates}}
  top, top_score = None, -np.inf
  for point in candidates:
    score = _side_score(truth, _side_pred(stats, side, point, exact, rankings[point.shrink]))
    if score > top_score + 1e-9:
      top, top_score = point, score
  return top, top_score


def fit(stats: dict[str, np.ndarray], exact_rule: TunedRule, grid: Grid = Grid()) -> TunedRule:
  """Per side, the grid point scoring best on ``stats`` (``exact_rule`` wins ties)."""
  return TunedRule(**{side: _best_side(stats, side, grid.points(side), exact_rule.side(side),
                                       exact_rule)[0] for side in SIDES})


def fit_label_config(stats: dict[str, np.ndarray], exact_rule: TunedRule,
                     grid: Grid = Grid()) -> TunedRule:
  """The best rule a ``LabelConfig`` can hold (no shrinkage, one minimum genre count for both
  sides, a disliked threshold not above the liked one): train labels for a model where
  :func:`fit`'s rule needs more than that. The sides are fitted apart for each minimum count;
  the count whose sides score best in sum wins (``exact_rule`` wins ties). A count whose best
  sides cross (disliked threshold above the liked one) is passed over, not searched for the
  best pair that does not cross."""
  best, best_score = exact_rule, -np.inf
  own_count = exact_rule.liked.min_count
  for count in [own_count] + sorted(set(grid.min_counts) - {own_count}):
    sides, total = {}, 0.0
    for side in SIDES:
      own = exact_rule.side(side)
      start = own if own.shrink == 0 and own.min_count == count else None
      points = [p for p in grid.points(side) if p.shrink == 0 and p.min_count == count]
      sides[side], score = _best_side(stats, side, points, start, exact_rule)
      total += score
    if any(r is None for r in sides.values()) or (
        sides["disliked"].threshold > sides["liked"].threshold):
      continue
    if total > best_score + 1e-9:
      best, best_score = TunedRule(**sides), total
  return best


def fit_on_train(data: MovieLensData, *, history_size: int, sampler: str, seed: int = 0,
                 label_config: labels_lib.LabelConfig = labels_lib.LabelConfig(),
                 grid: Grid = Grid()) -> TunedRule:
  """The rule fitted on the train users' histories (one per user, as the test users get)."""
  examples = build_examples(data, split="train", history_size=history_size, sampler=sampler,
                            seed=seed, label_config=label_config)
  if not examples:
    raise ValueError(f"{data.name}: no labelled train users to fit the tuned rule on")
  return fit(history_stats(data, examples), TunedRule.from_label_config(label_config), grid)


def as_labels(pred: np.ndarray) -> list[labels_lib.UserLabels]:
  """``[E, 38]`` indicators as ``UserLabels`` (canonical genre order)."""
  g = genres_lib.NUM_GENRES
  return [labels_lib.UserLabels(tuple(genres_lib.GENRES[i] for i in np.flatnonzero(row[:g])),
                                tuple(genres_lib.GENRES[i] for i in np.flatnonzero(row[g:])))
          for row in pred]
