"""Genre probe: supervise the T5 encoder to aggregate the history itself (a persoma addition).

PERSOMA-MLP gives the T5 one soft token per item; the label rule it must learn is an aggregate
over items (per genre: how many shown movies, their mean rating, and the ranking of the genres
over the thresholds). The encoder has to build that aggregate from the item tokens, and with a
T5 trained from scratch it learns it slowly (docs/RESULTS.md, session 43). The probe gives that
step its own training signal, without changing what the T5 reads or writes:

* the encoder output at the first ``num_genres`` task-prompt positions (``[B, G, H]``, token g
  for canonical genre g) goes through one shared linear head to ``[B, G, 5]``: whether genre g
  qualifies (at least ``rule.min_genre_count`` shown movies; a logit), its mean shown rating
  (stars, a regression), and its class under ``rule`` (none / liked / disliked; 3 logits);
* :func:`probe_targets` computes the same quantities from the item targets (``history_genres
  [B, N, G]``, ``history_stars [B, N]``, ``history_mask [B, N]``) exactly as
  ``persoma.data.labels.labels_from_stats`` does, ranking included;
* :func:`probe_loss` scores the head against them; ``PersomaModel.probe_loss_weight`` adds it.

With ``whole_rule`` the rows that show fewer than N items (a whole history) take their targets
under it instead (the label rule, which gives such a row's labels exactly), as a rationale under
``PersomaDataConfig.whole_rationale`` does.

The head is only read by the loss: decoding never calls it, so at inference the model is the
plain PERSOMA network.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from persoma.data.labels import LabelConfig
from persoma.models import adapters

Array = jax.Array

# Name of the [B, G, 5] probe outputs sown into the 'intermediates' collection.
PROBE_OUTPUTS = "genre_probe_outputs"
# Output channels of the head.
QUALIFY, MEAN, CLASS = 0, 1, slice(2, 5)
NONE, LIKED, DISLIKED = 0, 1, 2


class GenreProbe(nn.Module):
  """Linear head ``[B, G, H] -> [B, G, 5]`` on the encoder output at the genre positions.

  Attributes:
    rule: the label rule whose per-genre working the head predicts (the run's ``shown`` rule).
    whole_rule: the rule for rows showing fewer than N items (None: ``rule`` for every row).
    num_genres: G, the task-prompt positions read (one per canonical genre).
    dtype: computation dtype of the head.
  """
  rule: LabelConfig = LabelConfig()
  whole_rule: Optional[LabelConfig] = None
  num_genres: int = 19
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, encoded: Array) -> Array:
    if encoded.ndim != 3 or encoded.shape[1] != self.num_genres:
      raise ValueError(f"GenreProbe expects encoder outputs [B, {self.num_genres}, H], got "
                       f"{encoded.shape}")
    out = adapters.dense(5, ("embed", "probe_outputs"), "head", self.dtype)(
        encoded.astype(self.dtype))
    self.sow("intermediates", PROBE_OUTPUTS, out)
    return out


def probe_targets(genres: Array, stars: Array, mask: Array, rule: LabelConfig,
                  whole_rule: Optional[LabelConfig] = None) -> dict[str, Array]:
  """Per-genre working of ``rule`` on the shown items.

  Args:
    genres: ``[B, N, G]`` 0/1 catalog genres; stars: ``[B, N]`` 0-based stars (rating - 1);
    mask: ``[B, N]`` real items.
    rule: the rule of every row, or (with ``whole_rule``) of the rows with N real items.
    whole_rule: the rule of the rows with fewer than N real items (None: ``rule``).
  Returns:
    ``count [B, G]`` float, ``mean [B, G]`` (stars 1-5; 0 where count is 0), ``qualify [B, G]``
    bool and ``label [B, G]`` int32 (``NONE`` / ``LIKED`` / ``DISLIKED``), ties broken as
    ``labels_from_stats`` breaks them (larger count, then canonical order).
  """
  m = (mask > 0).astype(jnp.float32)[..., None] * genres.astype(jnp.float32)  # [B, N, G]
  count = m.sum(axis=1)
  sums = jnp.einsum("bng,bn->bg", m, stars.astype(jnp.float32) + 1.0)
  mean = jnp.where(count > 0, sums / jnp.maximum(count, 1.0), 0.0)
  qualify, label = _classes(count, mean, rule)
  if whole_rule is not None:
    is_whole = ((mask > 0).sum(axis=1) < mask.shape[1])[:, None]  # [B, 1]
    whole_qualify, whole_label = _classes(count, mean, whole_rule)
    qualify = jnp.where(is_whole, whole_qualify, qualify)
    label = jnp.where(is_whole, whole_label, label)
  return {"count": count, "mean": mean, "qualify": qualify, "label": label}


def _classes(count: Array, mean: Array, rule: LabelConfig) -> tuple[Array, Array]:
  """``(qualify [B, G] bool, label [B, G] int32)`` of ``rule`` on per-genre ``count`` and
  ``mean`` ``[B, G]`` (see :func:`probe_targets`)."""
  qualify = count >= rule.min_genre_count
  g = count.shape[-1]
  idx = jnp.arange(g)

  def top(candidates: Array, sign: float, limit: int) -> Array:
    # Genre j ranks before genre i: better mean (by sign), then more movies, then lower index.
    mi, mj = sign * mean[:, :, None], sign * mean[:, None, :]
    ci, cj = count[:, :, None], count[:, None, :]
    before = (mj > mi) | ((mj == mi) & ((cj > ci) | ((cj == ci) & (idx[None, :] < idx[:, None]))))
    rank = jnp.sum(before & candidates[:, None, :], axis=-1)  # [B, G]
    return candidates & (rank < limit)

  liked = top(qualify & (mean > rule.like_threshold), 1.0, rule.max_liked)
  disliked = top(qualify & (mean < rule.dislike_threshold), -1.0, rule.max_disliked)
  label = jnp.where(liked, LIKED, jnp.where(disliked, DISLIKED, NONE)).astype(jnp.int32)
  return qualify, label


def probe_loss(outputs: Array, targets: Mapping[str, Array]) -> Array:
  """Mean over rows and genres of: qualify sigmoid cross-entropy + class cross-entropy +
  squared error of the mean rating (stars) where the genre has a shown movie. Scalar."""
  outputs = outputs.astype(jnp.float32)
  qualify = optax.sigmoid_binary_cross_entropy(outputs[..., QUALIFY],
                                               targets["qualify"].astype(jnp.float32))
  label = optax.softmax_cross_entropy_with_integer_labels(outputs[..., CLASS], targets["label"])
  seen = (targets["count"] > 0).astype(jnp.float32)
  mean_err = seen * jnp.square(outputs[..., MEAN] - targets["mean"])
  rows = outputs.shape[0] * outputs.shape[1]
  return (jnp.sum(qualify + label) + jnp.sum(mean_err)) / rows


def find_probe_outputs(intermediates: Mapping) -> Optional[Array]:
  """The sown ``[B, G, 5]`` probe outputs in an ``intermediates`` tree, or None."""
  for k, v in intermediates.items():
    if k == PROBE_OUTPUTS:
      return v[0] if isinstance(v, tuple) else v
    if isinstance(v, Mapping):
      found = find_probe_outputs(v)
      if found is not None:
        return found
  return None
