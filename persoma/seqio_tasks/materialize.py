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
                with_user_id: bool = False, history_as_index: bool = False
                ) -> dict[str, np.ndarray]:
  """The whole ``split`` of ``task_name`` as model-batch arrays.

  Args:
    task_name: a persoma task name (``persoma_synthetic_h10_recency_uem`` ...).
    split: 'train' | 'validation' | 'test'.
    sequence_length: ``{'inputs': L, 'targets': T}``.
    with_user_id: also return ``user_id`` ``[E]`` int64 (not a model feature).
    history_as_index: memory saver for large splits: instead of ``history_embeddings`` return
      ``history_index`` ``[E, N, k]`` int32 rows of :func:`history_table` (padding = its last,
      zero row); :func:`gather_history` turns a batch of it into ``[B, N, k*D]``.

  Returns:
    ``encoder_input_tokens`` ``[E, L]`` int32, ``decoder_input_tokens`` / ``decoder_target_tokens``
    ``[E, T]`` int32, ``decoder_loss_weights`` ``[E, T]`` float32, and for embedding tasks
    ``history_embeddings`` ``[E, N, k*D]`` float32 and ``history_mask`` ``[E, N]`` int32, plus
    ``history_genres`` / ``history_stars`` when ``PersomaDataConfig.item_targets`` is set.
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
    positions = [ex.positions for ex in examples]
    if history_as_index:
      idx = store.history_index(positions, spec.history_size)
      out["history_index"] = idx
      out["history_mask"] = (idx[:, :, 0] < len(store.texts)).astype(np.int32)
    else:
      emb, mask = store.histories(tasks_lib.load_data(spec.dataset_name), positions,
                                  spec.history_size)
      out["history_embeddings"] = emb
      out["history_mask"] = mask
    out.update(tasks_lib.item_target_features(spec, positions))
  if with_user_id:
    out["user_id"] = np.asarray([ex.user_id for ex in examples], np.int64)
  return out


def history_table(task_name: str) -> np.ndarray:
  """``[V+1, D]`` float32 catalog text embeddings of an embedding task (last row zeros)."""
  spec = tasks_lib.parse_task_name(task_name)
  if spec.textprompt:
    raise ValueError(f"{task_name} is a text-prompting task: it has no history embeddings")
  return tasks_lib.get_store(spec.dataset_name, spec.fmt).padded_table()


def gather_history(table: np.ndarray, index: np.ndarray) -> np.ndarray:
  """``table [V+1, D]`` at ``index [..., N, k]`` -> ``[..., N, k*D]`` history embeddings."""
  index = np.asarray(index)
  out = np.asarray(table)[index]
  return out.reshape(index.shape[:-1] + (index.shape[-1] * out.shape[-1],))
