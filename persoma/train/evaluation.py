"""Scoring decoded texts: verbalise to liked/disliked genre sets, class-weighted P/R/F1.

Thin glue over `persoma.metrics` (the verbaliser and the 38-class weighted metric).
"""

from __future__ import annotations

from typing import Sequence


def score_texts(predictions: Sequence[str], targets: Sequence[str]) -> dict[str, float]:
  """`{'f1','precision','recall', 'verbalizer/...': counts}` of generated texts against
  target texts (same length)."""
  if len(predictions) != len(targets):
    raise ValueError(f"{len(predictions)} predictions but {len(targets)} targets")
  if not targets:
    raise ValueError("nothing to score: empty split")
  from persoma import metrics  # pylint: disable=g-import-not-at-top
  res = metrics.score_texts(list(targets), list(predictions))
  return {k: float(v) for k, v in res.items()}
