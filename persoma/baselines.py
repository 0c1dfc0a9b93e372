"""Non-learned baselines on the shown history, scored like the models.

* ``counting`` (UEM/PERSOMA papers): liked = the 3 most frequent genres in the shown history,
  disliked = the 3 least frequent among the genres present there (and not already liked); ties
  broken by canonical genre order.
* ``rule``: the label rule (persoma.data.labels.LabelConfig) applied to the shown history only.
* ``all``: every genre as both liked and disliked (all 38 classes), whatever the history. No
  personalisation at all; it shows how much class-weighted F1 rewards recall (recall is 1, and
  each class's precision is its share of users), the reference any recall-heavy decoding must
  beat.

Both are evaluated on the same examples as the models (persoma.data.build_examples: same split,
sampler, seed and history size; targets from the whole history).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from persoma.data import genres as genres_lib
from persoma.data import labels as labels_lib
from persoma.data.examples import build_examples
from persoma.data.structures import MovieLensData
from persoma.metrics import weighted

BASELINES = ("counting", "rule", "all")


def counting_prediction(data: MovieLensData, positions: Sequence[int] | np.ndarray,
                        k: int = 3) -> labels_lib.UserLabels:
  """``k`` most frequent genres as liked, ``k`` least frequent present ones as disliked."""
  _, counts = labels_lib.genre_stats(data, positions)
  idx = np.arange(genres_lib.NUM_GENRES)
  present = idx[counts > 0]
  most = present[np.lexsort((present, -counts[present]))][:k]
  rest = np.setdiff1d(present, most)
  least = rest[np.lexsort((rest, counts[rest]))][:k]
  return labels_lib.UserLabels(tuple(genres_lib.GENRES[i] for i in most),
                               tuple(genres_lib.GENRES[i] for i in least))


def rule_prediction(data: MovieLensData, positions: Sequence[int] | np.ndarray,
                    config: labels_lib.LabelConfig = labels_lib.LabelConfig()
                    ) -> labels_lib.UserLabels:
  """The label rule on the shown ratings only."""
  return labels_lib.labels_for_positions(data, positions, config)


def all_prediction(data: MovieLensData, positions: Sequence[int] | np.ndarray
                   ) -> labels_lib.UserLabels:
  """Every genre liked and every genre disliked (the history is ignored)."""
  del data, positions
  return labels_lib.UserLabels(genres_lib.GENRES, genres_lib.GENRES)


def get_baseline(name: str) -> Callable[..., labels_lib.UserLabels]:
  """The prediction function of baseline ``name`` (ValueError listing the valid names)."""
  if name == "counting":
    return counting_prediction
  if name == "rule":
    return rule_prediction
  if name == "all":
    return all_prediction
  raise ValueError(f"unknown baseline {name!r}; valid baselines: {', '.join(BASELINES)}")


def evaluate_baseline(name: str, data: MovieLensData, *, split: str = "test",
                      history_size: int = 50, sampler: str = "recency", seed: int = 0,
                      label_config: labels_lib.LabelConfig = labels_lib.LabelConfig()
                      ) -> dict[str, float]:
  """Weighted P/R/F1 of baseline ``name`` on the examples of ``split``.

  Returns:
    ``{'f1', 'precision', 'recall', 'users', 'skipped_users', 'support', ...}`` with the
    dataset name and ``synthetic`` flag so results are never mistaken for real data.
  """
  predict = get_baseline(name)
  examples = build_examples(data, split=split, history_size=history_size, sampler=sampler,
                            seed=seed, label_config=label_config)
  truth, preds = [], []
  for ex in examples:
    p = (rule_prediction(data, ex.positions, label_config) if name == "rule"
         else predict(data, ex.positions))
    truth.append((ex.liked, ex.disliked))
    preds.append((p.liked, p.disliked))
  scores = weighted.score_sets(truth, preds)  # all zeros when there are no examples
  return {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
          "f1_liked": scores["f1_liked"], "f1_disliked": scores["f1_disliked"],
          "users": len(examples), "skipped_users": examples.skipped_empty,
          "support": scores["support"], "baseline": name, "dataset": data.name,
          "synthetic": data.synthetic, "split": split, "history": history_size,
          "sampler": sampler, "seed": seed}
