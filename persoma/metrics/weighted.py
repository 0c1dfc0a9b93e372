"""Class-weighted precision, recall and F1 over the 38 liked/disliked genre classes.

Equal to scikit-learn's ``precision_recall_fscore_support(..., average='weighted')`` on
multilabel indicator matrices: per-class P, R and F1 (0 where undefined), averaged with weights
proportional to each class's support (true count). Classes with no support get weight 0; with no
support at all every score is 0. `side_scores` adds the same F1 over the 19 liked classes and
over the 19 disliked classes alone (`f1_liked`, `f1_disliked`), to tell the two halves apart.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from persoma.data import genres as genres_lib
from persoma.metrics import verbalizer


def per_class_prf(y_true: np.ndarray, y_pred: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Per-class ``(precision [C], recall [C], f1 [C], support [C])`` of ``[n, C]`` 0/1 arrays."""
  t = np.asarray(y_true)
  p = np.asarray(y_pred)
  if t.shape != p.shape or t.ndim != 2:
    raise ValueError(f"y_true {t.shape} and y_pred {p.shape} must be equal [n, C] shapes")
  t = t.astype(bool)
  p = p.astype(bool)
  tp = (t & p).sum(axis=0).astype(np.float64)
  pred = p.sum(axis=0).astype(np.float64)
  support = t.sum(axis=0).astype(np.float64)
  precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
  recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
  denom = precision + recall
  f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
  return precision, recall, f1, support


def weighted_prf(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
  """``{'precision', 'recall', 'f1', 'support'}`` support-weighted over classes."""
  precision, recall, f1, support = per_class_prf(y_true, y_pred)
  total = support.sum()
  if total == 0:
    return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
  w = support / total
  return {"precision": float(w @ precision), "recall": float(w @ recall), "f1": float(w @ f1),
          "support": int(total)}


def side_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
  """``{'f1_liked', 'f1_disliked'}``: weighted F1 over each half of ``[n, 38]`` indicators."""
  half = genres_lib.NUM_GENRES
  return {f"f1_{side}": weighted_prf(y_true[:, sl], y_pred[:, sl])["f1"]
          for side, sl in (("liked", slice(0, half)), ("disliked", slice(half, 2 * half)))}


def score_sets(true_pairs: Sequence[tuple[Sequence[str], Sequence[str]]],
               pred_pairs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> dict[str, float]:
  """Weighted P/R/F1 (and per-side F1) of predicted vs true ``(liked, disliked)`` pairs."""
  if len(true_pairs) != len(pred_pairs):
    raise ValueError(f"{len(true_pairs)} targets vs {len(pred_pairs)} predictions")
  y_true = verbalizer.indicator_matrix(true_pairs)
  y_pred = verbalizer.indicator_matrix(pred_pairs)
  return {**weighted_prf(y_true, y_pred), **side_scores(y_true, y_pred)}


def score_texts(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
  """Weighted P/R/F1 of generated texts against target texts, plus verbaliser problem counts.

  This is the SeqIO-style metric: ``score_texts(targets, predictions)``.
  """
  if len(targets) != len(predictions):
    raise ValueError(f"{len(targets)} targets vs {len(predictions)} predictions")
  y_true, _ = verbalizer.parse_many(targets)
  y_pred, problems = verbalizer.parse_many(predictions)
  out: dict[str, float] = {**weighted_prf(y_true, y_pred), **side_scores(y_true, y_pred)}
  out.update({f"verbalizer/{k}": v for k, v in problems.items()})
  out["examples"] = len(targets)
  return out
