"""Non-learned baselines on the shown history, scored like the models.

* ``counting`` (UEM/PERSOMA papers): liked = the 3 most frequent genres in the shown history,
  disliked = the 3 least frequent among the genres present there (and not already liked); ties
  broken by canonical genre order.
* ``rule``: the label rule (persoma.data.labels.LabelConfig) applied to the shown history only.
* ``rule_tuned`` (a persoma addition): the label rule with its per-side threshold, count,
  minimum genre count and a shrinkage of the means fitted on the train users' shown histories to
  predict their whole-history labels (``persoma.tuned_rule``); users whose whole history is
  shown keep the rule. The only baseline that learns anything, and only a few numbers.
* ``all``: every genre as both liked and disliked (all 38 classes), whatever the history. No
  personalisation at all; it shows how much class-weighted F1 rewards recall (recall is 1, and
  each class's precision is its share of users), the reference any recall-heavy decoding must
  beat.

All are evaluated on the same examples as the models (persoma.data.build_examples: same split,
sampler, seed and history size; targets from the whole history).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from persoma.data import genres as genres_lib
from persoma.data import labels as labels_lib
from persoma.data.examples import build_examples
from persoma.data.structures import MovieLensData
from persoma import tuned_rule
from persoma.metrics import weighted

# Baselines that predict each example on its own (``get_baseline``), and every baseline.
PER_EXAMPLE_BASELINES = ("counting", "rule", "all")
BASELINES = PER_EXAMPLE_BASELINES + ("rule_tuned",)


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
  """The prediction function of per-example baseline ``name`` (ValueError listing the valid
  names; ``rule_tuned`` is fitted first, see :func:`evaluate_baseline`)."""
  if name == "counting":
    return counting_prediction
  if name == "rule":
    return rule_prediction
  if name == "all":
    return all_prediction
  if name == "rule_tuned":
    raise ValueError("baseline 'rule_tuned' is fitted on the train users before it predicts: "
                     "use evaluate_baseline or persoma.tuned_rule.fit_on_train")
  raise ValueError(f"unknown baseline {name!r}; valid baselines: {', '.join(BASELINES)}")


def evaluate_baseline(name: str, data: MovieLensData, *, split: str = "test",
                      history_size: int = 50, sampler: str = "recency", seed: int = 0,
                      label_config: labels_lib.LabelConfig = labels_lib.LabelConfig()
                      ) -> dict[str, float]:
  """Weighted P/R/F1 of baseline ``name`` on the examples of ``split``. ``rule_tuned`` is first
  fitted on the train users' histories, so it scores 'validation' or 'test' only (ValueError).

  Returns:
    ``{'f1', 'precision', 'recall', 'users', 'skipped_users', 'support', ...}`` with the
    dataset name and ``synthetic`` flag so results are never mistaken for real data; for
    ``rule_tuned`` also ``'fitted'``, the fitted ``TunedRule`` as ``{'liked': {...},
    'disliked': {...}}``.
  """
  if name == "rule_tuned" and split not in ("validation", "test"):
    raise ValueError(f"baseline 'rule_tuned' is fitted on the train users; score it on the "
                     f"validation or test split, not {split!r}")
  examples = build_examples(data, split=split, history_size=history_size, sampler=sampler,
                            seed=seed, label_config=label_config)
  extra = {}
  if name == "rule_tuned":
    fitted = tuned_rule.fit_on_train(data, history_size=history_size, sampler=sampler, seed=seed,
                                     label_config=label_config)
    extra["fitted"] = dataclasses.asdict(fitted)
    found = (tuned_rule.as_labels(tuned_rule.predict(
        tuned_rule.history_stats(data, examples), fitted,
        tuned_rule.TunedRule.from_label_config(label_config))) if examples else [])
  else:
    predict = get_baseline(name)
    found = [rule_prediction(data, ex.positions, label_config) if name == "rule"
             else predict(data, ex.positions) for ex in examples]
  truth = [(ex.liked, ex.disliked) for ex in examples]
  preds = [(p.liked, p.disliked) for p in found]
  scores = weighted.score_sets(truth, preds)  # all zeros when there are no examples
  return {"f1": scores["f1"], "precision": scores["precision"], "recall": scores["recall"],
          "f1_liked": scores["f1_liked"], "f1_disliked": scores["f1_disliked"],
          "users": len(examples), "skipped_users": examples.skipped_empty,
          "support": scores["support"], "baseline": name, "dataset": data.name,
          "synthetic": data.synthetic, "split": split, "history": history_size,
          "sampler": sampler, "seed": seed, **extra}
