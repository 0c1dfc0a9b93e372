"""Examples: one per user in a split, with a sampled history and its genre-preference target."""

from __future__ import annotations

import dataclasses

import numpy as np

from persoma.data import formats, labels as labels_lib, samplers, split as split_lib
from persoma.data.structures import MovieLensData


@dataclasses.dataclass(frozen=True)
class Example:
  """One user's example.

  Attributes:
    user_id: original user id.
    user_index: index into ``data.user_ids``.
    positions: ``[n<=N]`` int64 rating positions (indices into ``data.ratings``), time order.
    liked, disliked: target genres (canonical names, best/worst first).
    targets: ``Liked Genres: ... . Not Liked Genres: ...``, after the rationale if asked for.
  """

  user_id: int
  user_index: int
  positions: np.ndarray
  liked: tuple[str, ...]
  disliked: tuple[str, ...]
  targets: str


RESAMPLE_LABELS: tuple[str, ...] = ("history", "window", "shown")


class ExampleList(list):
  """``list[Example]`` that also reports how many users were skipped and why.

  Attributes:
    skipped_empty: users (or augmented copies) dropped because no genre qualified on either side.
    users_in_split: users in the split before skipping.
  """

  skipped_empty: int = 0
  users_in_split: int = 0


def build_examples(data: MovieLensData, *, split: str, history_size: int, sampler: str,
                   seed: int = 0, label_config: labels_lib.LabelConfig = labels_lib.LabelConfig(),
                   fractions=split_lib.DEFAULT_FRACTIONS, resamples: int = 1,
                   resample_labels: str = "history",
                   resample_sampler: str | None = None, rationale: bool = False,
                   rationale_order: str = "canonical",
                   shown_label_config: labels_lib.LabelConfig | None = None,
                   whole_rationale: bool = False,
                   rationale_counts: bool = False) -> ExampleList:
  """Examples of every user in ``split`` ('train'|'validation'|'test'|'all'), user-index order.

  With ``resamples = K > 1`` each user gets K examples in a row: the sampler's history, then
  ``K - 1`` augmented ones (:func:`persoma.data.samplers.resample`). ``resample_labels`` says
  what the augmented ones are labelled from: ``'history'`` (the user's whole-history target, the
  same as copy 0), ``'window'`` (the label rule on the copy's time window, i.e. the window
  treated as a whole user; the shown items are sampled from it as the test users' are from
  their whole history) or ``'shown'`` (the label rule on the shown items only). An augmented
  copy whose own label is empty is dropped (counted in ``.skipped_empty``). Copy 0 always keeps
  the user's target. ``resample_sampler`` (None: ``sampler``) picks the augmented copies'
  items from their windows, e.g. random items where copy 0 keeps the most recent ones. Meant for
  the train split only; evaluation uses one history per user.

  ``rationale`` writes the label rule's working on the shown items before every target
  (:func:`persoma.data.labels.rationale`: ``Shown: Action 3.75, Drama 4.10. Liked Genres: ...``),
  a persoma addition: a scratchpad the decoder learns to write before the labels; its genres
  come in ``rationale_order`` (``labels.RATIONALE_ORDERS``: canonical, or highest mean first).

  ``shown_label_config`` (None: ``label_config``) is the rule that labels the shown items of a
  full augmented copy (N items) under ``resample_labels='shown'``, and the rationale lists the
  genres with at least its ``min_genre_count`` shown movies. A rule tuned to estimate the
  whole-history labels from N items (``persoma.tuned_rule``) can stand there; copies with fewer
  than N items keep ``label_config``, as their window is all there is to see (a copy of N items
  that happens to show a whole history of exactly N ratings still gets the tuned rule). Its
  ``source`` and ``keep_empty`` are not read: ``label_config.keep_empty`` decides what is dropped.

  ``whole_rationale`` (a persoma addition; with ``rationale``): an example showing fewer than N
  items, a whole history (or a whole window), writes its rationale under ``label_config``, the
  rule its labels follow, with the header ``Whole:`` (``formats.WHOLE_RATIONALE_HEADER``); the
  others keep ``Shown:`` and ``shown_label_config``. The rationale then names the rule each
  example's labels follow, and its first word says which, where otherwise the decoder must tell
  the two cases apart before its labels. (An example showing a whole history of exactly N
  ratings cannot be told from a window and keeps ``Shown:``.)

  ``rationale_counts`` (a persoma addition; with ``rationale``): each rationale genre's shown
  movie count comes before its mean (``Shown: Action 4 3.75, Drama 10 4.10.``), so the text
  holds everything the rule uses, including the counts by which it ranks equal means.

  Deterministic for fixed arguments. Labels come from the whole pruned history, or from the shown
  positions when ``label_config.source == 'shown'``. Users with no liked and no disliked genre are
  skipped (counted in ``.skipped_empty``) unless ``label_config.keep_empty``.
  """
  samplers.check_sampler(sampler)
  resample_sampler = samplers.check_sampler(resample_sampler) if resample_sampler else sampler
  if resamples < 1:
    raise ValueError(f"resamples must be >= 1, got {resamples}")
  if history_size < 1:
    raise ValueError(f"history_size must be >= 1, got {history_size}")
  if resample_labels not in RESAMPLE_LABELS:
    raise ValueError(f"resample_labels={resample_labels!r}; valid: {', '.join(RESAMPLE_LABELS)}")
  if rationale_order not in labels_lib.RATIONALE_ORDERS:
    raise ValueError(f"rationale_order={rationale_order!r}; valid: "
                     f"{', '.join(labels_lib.RATIONALE_ORDERS)}")
  if whole_rationale and not rationale:
    raise ValueError("whole_rationale=True needs rationale=True: it picks the rationale's rule")
  if rationale_counts and not rationale:
    raise ValueError("rationale_counts=True needs rationale=True: it writes the rationale's "
                     "counts")
  rationale_config = label_config if shown_label_config is None else shown_label_config
  users = split_lib.users_in_split(data.user_ids, split, fractions)
  if label_config.source == "history":
    sums, counts = labels_lib.all_genre_stats(data)
  out = ExampleList()
  out.users_in_split = int(users.size)
  for u in users:
    u = int(u)
    if label_config.source == "history":
      lab = labels_lib.labels_from_stats(sums[u], counts[u], label_config)
      if lab.empty and not label_config.keep_empty:
        out.skipped_empty += 1
        continue
    for copy in range(resamples):
      pos = (samplers.resample(resample_sampler, data, u, history_size, seed, copy) if copy
             else samplers.sample(sampler, data, u, history_size, seed))
      if label_config.source != "history":
        lab = labels_lib.labels_for_positions(data, pos, label_config)
        if lab.empty and not label_config.keep_empty:
          out.skipped_empty += 1
          continue
      copy_lab = lab
      if copy and resample_labels != "history":
        source = (samplers.resample_window(data, u, history_size, seed, copy)
                  if resample_labels == "window" else pos)
        rule = (shown_label_config if shown_label_config is not None and resample_labels ==
                "shown" and len(pos) >= history_size else label_config)
        copy_lab = labels_lib.labels_for_positions(data, source, rule)
        if copy_lab.empty and not label_config.keep_empty:
          out.skipped_empty += 1
          continue
      target = formats.format_target(copy_lab.liked, copy_lab.disliked)
      if rationale:
        whole = whole_rationale and len(pos) < history_size
        head = labels_lib.rationale(
            data, pos, label_config if whole else rationale_config, rationale_order,
            formats.WHOLE_RATIONALE_HEADER if whole else formats.RATIONALE_HEADER,
            with_counts=rationale_counts)
        target = f"{head} {target}"
      out.append(Example(user_id=int(data.user_ids[u]), user_index=u, positions=pos,
                         liked=copy_lab.liked, disliked=copy_lab.disliked, targets=target))
  return out
