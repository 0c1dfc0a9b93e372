"""Encoder-decoder feature conversion that carries the history features to the model.

Task features: ``inputs`` / ``targets`` (int32 tokens), ``history_embeddings`` ``[N, D]`` float32,
``history_mask`` ``[N]`` int32. Model features (unpacked; see docs/DESIGN.md "Model batch"):

* ``encoder_input_tokens`` ``[L]`` int32, 0 = pad;
* ``decoder_target_tokens`` ``[T]`` int32 (EOS 1, pad 0);
* ``decoder_input_tokens`` ``[T]`` int32, targets shifted right with BOS 0;
* ``decoder_loss_weights`` ``[T]`` float32 (1 on non-pad targets);
* ``history_embeddings`` ``[N, D]`` float32 and ``history_mask`` ``[N]`` int32, passed through;
  so are ``history_genres`` ``[N, 19]`` / ``history_stars`` ``[N]`` where the task has them.

Batched by the caller to ``[B, ...]``. The history lengths need not be given: they default to the
dataset's static ``N``. Datasets without history features (text prompting) convert to the four
token features only.
"""

from __future__ import annotations

import copy
from typing import Mapping

import seqio
import tensorflow as tf

FeatureSpec = seqio.FeatureConverter.FeatureSpec

HISTORY_FEATURES: dict[str, FeatureSpec] = {
    "history_embeddings": FeatureSpec(dtype=tf.float32, rank=2),
    "history_mask": FeatureSpec(dtype=tf.int32, rank=1),
    "history_genres": FeatureSpec(dtype=tf.float32, rank=2),
    "history_stars": FeatureSpec(dtype=tf.int32, rank=1),
}


class PersomaFeatureConverter(seqio.EncDecFeatureConverter):
  """``EncDecFeatureConverter`` (pack=False) with history pass-through and float loss weights.

  Args:
    pack: must be False (pass-through features cannot be packed).
    use_custom_packing_ops, apply_length_check, bos_id: as in seqio.
    passthrough_features: extra features to carry (default: the history features).
  """

  MODEL_FEATURES = {
      "encoder_input_tokens": FeatureSpec(dtype=tf.int32),
      "decoder_target_tokens": FeatureSpec(dtype=tf.int32),
      "decoder_input_tokens": FeatureSpec(dtype=tf.int32),
      "decoder_loss_weights": FeatureSpec(dtype=tf.float32),
  }

  def __init__(self, pack: bool = False, use_custom_packing_ops: bool = False,
               apply_length_check: bool = True, bos_id: int = 0,
               passthrough_features: Mapping[str, FeatureSpec] | None = None):
    if pack:
      raise ValueError("PersomaFeatureConverter: pack=True is not supported (the history "
                       "features are per example); use pack=False")
    super().__init__(pack=False, use_custom_packing_ops=use_custom_packing_ops,
                     apply_length_check=apply_length_check, bos_id=bos_id,
                     passthrough_features=dict(HISTORY_FEATURES if passthrough_features is None
                                               else passthrough_features))

  def _convert_example(self, features: Mapping[str, tf.Tensor]) -> Mapping[str, tf.Tensor]:
    d = dict(super()._convert_example(features))
    d["decoder_loss_weights"] = tf.cast(d["decoder_loss_weights"], tf.float32)
    return d

  def __call__(self, ds: tf.data.Dataset, task_feature_lengths: Mapping[str, int]
               ) -> tf.data.Dataset:
    """Converts ``ds``; history lengths default to the static ``N`` of ``ds``."""
    spec = ds.element_spec
    active = {k: v for k, v in self._passthrough_features.items() if k in spec}
    lengths = {k: v for k, v in task_feature_lengths.items()
               if k in self.TASK_FEATURES or k in active}
    for k in active:
      n = spec[k].shape[0] if spec[k].shape.rank else None
      if k not in lengths:
        if n is None:
          raise ValueError(f"PersomaFeatureConverter: feature {k!r} has no static length; "
                           f"give it in task_feature_lengths")
        lengths[k] = int(n)
      elif n is not None and lengths[k] != n:
        raise ValueError(f"PersomaFeatureConverter: task_feature_lengths[{k!r}] = {lengths[k]} "
                         f"but the dataset's history has N = {n} items (the task's history "
                         f"size); omit it or give {n}")
    conv = copy.copy(self)
    conv._passthrough_features = active  # pylint: disable=protected-access
    return seqio.EncDecFeatureConverter.__call__(conv, ds, lengths)

  def get_model_feature_lengths(self, task_feature_lengths: Mapping[str, int]
                                ) -> Mapping[str, int]:
    """Token lengths from ``inputs``/``targets``; history lengths where given."""
    out = {
        "encoder_input_tokens": task_feature_lengths["inputs"],
        "decoder_target_tokens": task_feature_lengths["targets"],
        "decoder_input_tokens": task_feature_lengths["targets"],
        "decoder_loss_weights": task_feature_lengths["targets"],
    }
    for k in self._passthrough_features:
      if k in task_feature_lengths:
        out[k] = task_feature_lengths[k]
    return out
