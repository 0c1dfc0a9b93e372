"""Fast numpy path: a whole converted split as model-batch arrays, without tf.data.

``materialize(name, split, {'inputs': L, 'targets': T})`` equals running
``seqio.get_mixture_or_task(name).get_dataset(..., shuffle=False)`` through
:class:`PersomaFeatureConverter` and stacking the examples (same order, same tokens, same
floats), but tokenizes each distinct text once in Python and gathers the history embeddings
straight from the catalog table. The runner orders and batches the rows itself.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from persoma.seqio_tasks import tasks as tasks_lib


def _tokens(texts: Sequence[str], vocabulary, length: int) -> np.ndarray:
  """``[E, length]`` int32: each text's ids trimmed to ``length - 1``, then EOS, then 0s."""
  if length < 1:
    raise ValueError(f"sequence length must be >= 1, got {length}")
  eos = vocabulary.eos_id
  out = np.zeros((len(texts), length), np.int32)
  seen: dict[str, np.ndarray] = {}
  for i, text in enumerate(texts):
    ids = seen.get(text)
    if ids is None:
      ids = seen[text] = np.asarray(list(vocabulary.encode(text))[:length - 1] + [eos], np.int32)
    out[i, :ids.shape[0]] = ids
  return out


def materialize(task_name: str, split: str, sequence_length: Mapping[str, int], *,
                with_user_id: bool = False) -> dict[str, np.ndarray]:
  """The whole ``split`` of ``task_name`` as model-batch arrays.

  Args:
    task_name: a persoma task name (``persoma_synthetic_h10_recency_uem`` ...).
    split: 'train' | 'validation' | 'test'.
    sequence_length: ``{'inputs': L, 'targets': T}``.
    with_user_id: also return ``user_id`` ``[E]`` int64 (not a model feature).

  Returns:
    ``encoder_input_tokens`` ``[E, L]`` int32, ``decoder_input_tokens`` / ``decoder_target_tokens``
    ``[E, T]`` int32, ``decoder_loss_weights`` ``[E, T]`` float32, and for embedding tasks
    ``history_embeddings`` ``[E, N, k*D]`` float32 and ``history_mask`` ``[E, N]`` int32.
  """
  spec = tasks_lib.parse_task_name(task_name)
  examples = tasks_lib.get_examples(spec, split)
  vocabulary = tasks_lib.get_vocabulary(spec.dataset_name)
  enc = _tokens(tasks_lib.input_texts(spec, examples), vocabulary, int(sequence_length["inputs"]))
  dec = _tokens([ex.targets for ex in examples], vocabulary, int(sequence_length["targets"]))
  dec_in = np.zeros_like(dec)
  dec_in[:, 1:] = dec[:, :-1]
  out = {
      "encoder_input_tokens": enc,
      "decoder_input_tokens": dec_in,
      "decoder_target_tokens": dec,
      "decoder_loss_weights": (dec != 0).astype(np.float32),
  }
  if not spec.textprompt:
    store = tasks_lib.get_store(spec.dataset_name, spec.fmt)
    emb, mask = store.histories(tasks_lib.load_data(spec.dataset_name),
                                [ex.positions for ex in examples], spec.history_size)
    out["history_embeddings"] = emb
    out["history_mask"] = mask
  if with_user_id:
    out["user_id"] = np.asarray([ex.user_id for ex in examples], np.int64)
  return out
