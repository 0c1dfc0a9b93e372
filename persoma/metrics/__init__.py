"""persoma.metrics: the verbaliser (text -> genre sets) and class-weighted P/R/F1.

Imports without jax or tensorflow.
"""

from persoma.metrics.verbalizer import Verbalized, indicator_matrix, parse, parse_many, to_indicator
from persoma.metrics.weighted import per_class_prf, score_sets, score_texts, weighted_prf

__all__ = ["Verbalized", "indicator_matrix", "parse", "parse_many", "per_class_prf",
           "score_sets", "score_texts", "to_indicator", "weighted_prf"]
