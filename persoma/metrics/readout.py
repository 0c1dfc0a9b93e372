"""Labels read from a generated rationale by the label rule (a persoma decoding readout).

A model trained with `PersomaDataConfig.target_rationale` writes the rule's working before its
labels, e.g. ``Shown: Action 3.75, Drama 4.10. Liked Genres: Action. Not Liked Genres: None``:
the mean rating of each genre that qualifies on the shown items. The labels it then writes
should be the rule applied to those means (thresholds, then the best or worst few), a step
the decoder gets right for about half of the users (`benchmarks/rationale_check.py`).
`RationaleReadout` takes that step exactly: the labels scored are the rule applied to the
means the model wrote (`labels_from_means`). A rationale headed ``Whole:`` (a run with
`PersomaDataConfig.whole_rationale`, on a row that shows the whole history) is read under
`whole_rule`; a text with no rationale keeps the labels it states. The rule ranks equal means
by their movie count: a rationale written with counts (`PersomaDataConfig.rationale_counts`,
``Shown: Action 4 3.75, ...``) gives them, and then the readout is the rule itself; otherwise
`ties='stated'` ranks equal means by the labels the decode states instead of canonical genre
order. `RationaleReadout.consensus` reads K sampled decodes of one user as one rationale (the
genres at least half write, at their median or mean written mean).

Imports without jax or tensorflow.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from persoma import errors
from persoma.data import formats, genres as genres_lib, labels as labels_lib
from persoma.metrics import verbalizer, weighted

Pair = tuple[tuple[str, ...], tuple[str, ...]]
CENTERS = ("median", "mean")
TIES = ("canonical", "stated")


def canonical_means(written: Mapping[str, float]) -> dict[str, float]:
  """``{canonical genre: mean}`` of a parsed rationale: names normalised, unknown names,
  repeats after the first and means outside ``formats.STAR_SCALE`` dropped (a sampled decode
  can write ``Children 1333``, a count run into its mean, which is no mean)."""
  out: dict[str, float] = {}
  lo, hi = formats.STAR_SCALE
  seen: set[str] = set()
  for name, mean in written.items():
    g = genres_lib.normalize_genre(name)
    if g is None or g in seen:
      continue
    seen.add(g)
    if lo <= float(mean) <= hi:
      out[g] = float(mean)
  return out


def canonical_counts(written: Mapping[str, tuple[float, int | None]]) -> dict[str, int]:
  """``{canonical genre: count}`` of a rationale parsed with counts
  (`formats.parse_rationale_counts`): the genres written with a count, names normalised,
  unknown names and repeats after the first dropped."""
  out: dict[str, int] = {}
  seen: set[str] = set()
  for name, (_, count) in written.items():
    g = genres_lib.normalize_genre(name)
    if g is None or g in seen:
      continue
    seen.add(g)
    if count is not None:
      out[g] = int(count)
  return out


def parse_canonical(text: str) -> tuple[dict[str, float], dict[str, int]] | None:
  """``(canonical_means, canonical_counts)`` of the rationale in ``text``
  (`formats.parse_rationale_counts`); None when it has none."""
  written = formats.parse_rationale_counts(text)
  if written is None:
    return None
  return canonical_means({n: m for n, (m, _) in written.items()}), canonical_counts(written)


def labels_from_means(means: Mapping[str, float], rule: labels_lib.LabelConfig,
                      prefer: Mapping[str, float] | None = None,
                      counts: Mapping[str, int] | None = None) -> labels_lib.UserLabels:
  """The label rule on written means (canonical genre names): every written genre qualifies
  (the rationale lists only genres that do) unless its written count is under
  ``min_genre_count``; over ``like_threshold`` best first, under ``dislike_threshold`` worst
  first, at most ``max_liked`` / ``max_disliked``. Equal means rank as the rule ranks them, by
  their movie count (more first; ``counts``, where the rationale writes them), then by
  ``prefer`` (higher first; None: all equal), then canonical genre order."""
  prefer, counts = prefer or {}, counts or {}
  means = {g: m for g, m in means.items() if counts.get(g, rule.min_genre_count) >=
           rule.min_genre_count}

  def ranked(names, sign):
    return tuple(sorted(names, key=lambda g: (sign * means[g], -counts.get(g, 0),
                                              -prefer.get(g, 0.0), genres_lib.GENRE_INDEX[g])))

  liked = ranked([g for g, m in means.items() if m > rule.like_threshold], -1.0)
  disliked = ranked([g for g, m in means.items() if m < rule.dislike_threshold], 1.0)
  return labels_lib.UserLabels(liked=liked[:rule.max_liked],
                               disliked=disliked[:rule.max_disliked])


def stated_weights(texts: Sequence[str]) -> dict[str, float]:
  """``{canonical genre: share of texts whose stated labels name it, on either side}``: the
  'stated' tie weights of `labels_from_means`."""
  named: dict[str, float] = {}
  for t in texts:
    v = verbalizer.parse(t)
    for g in set(v.liked) | set(v.disliked):
      named[g] = named.get(g, 0.0) + 1.0 / len(texts)
  return named


@dataclasses.dataclass(frozen=True)
class RationaleReadout:
  """Reads a generated text's labels from its rationale.

  Attributes:
    rule: the rule the run's ``Shown:`` rationales follow (its `shown_label_config`, else its
      `label_config`, else the defaults).
    whole_rule: the rule of rationales headed ``Whole:`` (None: `rule`).
    ties: how equal written means rank (`TIES`): 'canonical' genre order, or 'stated' (the
      genres the decode's own labels name first, then canonical order; the rule ranks equal
      means by their movie count, which the rationale does not write but the labels the
      model was trained to state after it follow).
  """

  rule: labels_lib.LabelConfig = labels_lib.LabelConfig()
  whole_rule: labels_lib.LabelConfig | None = None
  ties: str = "canonical"

  def __post_init__(self):
    if self.ties not in TIES:
      raise ValueError(f"readout ties {self.ties!r}; valid: {', '.join(TIES)}")

  def _prefer(self, texts: Sequence[str]) -> dict[str, float] | None:
    """`labels_from_means`' tie weights: `stated_weights(texts)` under 'stated', else None."""
    return stated_weights(texts) if self.ties == "stated" else None

  def rule_for(self, text: str) -> labels_lib.LabelConfig:
    """The rule `text`'s rationale is read under, by its header."""
    whole = formats.rationale_header(text) == formats.WHOLE_RATIONALE_HEADER
    return self.whole_rule if whole and self.whole_rule is not None else self.rule

  def read(self, text: str) -> tuple[Pair, bool]:
    """``((liked, disliked), from_rationale)``: the rule on the written means, or, for a text
    with no rationale, the labels it states (`from_rationale` False)."""
    written = parse_canonical(text)
    if written is None:
      v = verbalizer.parse(text)
      return (tuple(v.liked), tuple(v.disliked)), False
    means, counts = written
    lab = labels_from_means(means, self.rule_for(text), self._prefer([text]), counts)
    return (lab.liked, lab.disliked), True

  def consensus(self, texts: Sequence[str], center: str = "median") -> tuple[Pair, bool]:
    """``((liked, disliked), from_rationale)`` of K decodes of one user read as one rationale:
    the header most of them write (a tie: ``Shown:``), the genres at least half of the decodes
    with that header write, each at the `center` ('median' or 'mean') of the means written
    for it (and, for ranking equal means, the median of the counts written for it), under
    that header's rule. Averaging K sampled rationales lowers the noise of the written means
    before the rule's thresholds and ranking see them. With no rationale in any
    decode: the classes at least half of them state (`from_rationale` False)."""
    if center not in CENTERS:
      raise ValueError(f"consensus center {center!r}; valid: {', '.join(CENTERS)}")
    if not texts:
      raise ValueError("consensus of no decodes")
    headed = [(formats.rationale_header(t), parse_canonical(t), t) for t in texts]
    headed = [(h, w, t) for h, w, t in headed if w is not None]
    if not headed:
      votes = verbalizer.indicator_matrix([self.read(t)[0] for t in texts]).mean(axis=0)
      k = genres_lib.NUM_GENRES
      return (tuple(g for g, v in zip(genres_lib.GENRES, votes[:k]) if v >= 0.5),
              tuple(g for g, v in zip(genres_lib.GENRES, votes[k:]) if v >= 0.5)), False
    whole = formats.WHOLE_RATIONALE_HEADER
    n_whole = sum(h == whole for h, _, _ in headed)
    header = whole if 2 * n_whole > len(headed) else formats.RATIONALE_HEADER
    kept = [(w, t) for h, w, t in headed if (h == whole) == (header == whole)]
    agg = np.median if center == "median" else np.mean
    means, counts = {}, {}
    for g in genres_lib.GENRES:  # canonical order, as labels_from_means breaks ties
      vals = [w[g] for (w, _), _ in kept if g in w]
      if 2 * len(vals) >= len(kept):
        means[g] = float(agg(vals))
        written = [c[g] for (_, c), _ in kept if g in c]
        if written:
          counts[g] = int(np.round(np.median(written)))
    rule = self.whole_rule if header == whole and self.whole_rule is not None else self.rule
    lab = labels_from_means(means, rule, self._prefer([t for _, t in kept]), counts)
    return (lab.liked, lab.disliked), True

  def consensus_indicators(self, groups: Sequence[Sequence[str]], center: str = "median"
                           ) -> np.ndarray:
    """``[n, 38]`` 0/1 indicators of the `consensus` labels of n users' K decodes each."""
    return verbalizer.indicator_matrix([self.consensus(g, center)[0] for g in groups])

  def pairs(self, texts: Sequence[str]) -> tuple[list[Pair], int]:
    """The `read` labels of each text and how many texts had no rationale."""
    read = [self.read(t) for t in texts]
    return [p for p, _ in read], sum(not ok for _, ok in read)

  def indicators(self, texts: Sequence[str]) -> np.ndarray:
    """``[n, 38]`` 0/1 indicators of the `read` labels (liked classes first)."""
    return verbalizer.indicator_matrix(self.pairs(texts)[0])

  def score_texts(self, predictions: Sequence[str], targets: Sequence[str]
                  ) -> dict[str, float]:
    """Weighted P/R/F1 (and per-side F1) of the labels read from `predictions` against the
    labels the `targets` state, with ``readout/no_rationale``: the predictions read as
    stated. Same argument order as `persoma.train.evaluation.score_texts`."""
    if len(predictions) != len(targets):
      raise ValueError(f"{len(predictions)} predictions but {len(targets)} targets")
    if not targets:
      raise ValueError("nothing to score: empty split")
    pred_pairs, missing = self.pairs(predictions)
    true_pairs = [(tuple(v.liked), tuple(v.disliked))
                  for v in (verbalizer.parse(t) for t in targets)]
    out = {k: float(v) for k, v in weighted.score_sets(true_pairs, pred_pairs).items()}
    out["readout/no_rationale"] = float(missing)
    return out


def from_data_config(data_config: Any, ties: str = "canonical") -> RationaleReadout:
  """The readout of a run trained with `data_config` (a `PersomaDataConfig`), equal means
  ranked by `ties`. A config without `target_rationale` writes no rationale to read:
  ConfigError."""
  if not getattr(data_config, "target_rationale", False):
    raise errors.ConfigError(
        "the rationale readout reads the rule's working the model writes before its labels, "
        "but this run's PersomaDataConfig.target_rationale is False: its targets have none")
  base = data_config.label_config or labels_lib.LabelConfig()
  return RationaleReadout(rule=data_config.shown_label_config or base,
                          whole_rule=base if data_config.whole_rationale else None, ties=ties)
