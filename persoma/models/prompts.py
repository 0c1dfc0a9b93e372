"""The learned task prompt T: ``length`` soft tokens ``[P, H]`` shared by all users.

``TaskPrompt`` owns one parameter, ``prompt`` ``[P, H]`` with logical axes ``('prompt', 'embed')``.
Initialisers (``init_method``):

* ``'uniform'``: U(-init_scale, init_scale) (Lester et al. 2021 use 0.5).
* ``'normal'``: N(0, init_scale^2).
* ``'vocab'``: rows of the token-embedding table sampled (with the module's rng) from token ids
  ``[vocab_start, vocab_end)`` (default: the 5000 most frequent SentencePiece pieces); needs the
  ``vocab_embeddings`` argument at init.
* ``'tokens'``: the embeddings of ``init_token_ids`` (e.g. the tokenised task instruction),
  cycled to ``length``; needs ``vocab_embeddings`` at init.

A T5X checkpoint only exists after ``init``, so for ``'vocab'`` / ``'tokens'`` re-run the
initialiser on the restored embedding table with :func:`init_prompt_from_embeddings` (a pure
function on the param tree).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

PROMPT_INITS = ("uniform", "normal", "vocab", "tokens")


def sample_vocab_rows(rng: Array, vocab_embeddings: Array, length: int, vocab_start: int,
                      vocab_end: Optional[int]) -> Array:
  """``length`` rows of ``vocab_embeddings [V, H]`` drawn without replacement from the range."""
  v = vocab_embeddings.shape[0]
  end = v if vocab_end is None else min(vocab_end, v)
  if not 0 <= vocab_start < end:
    raise ValueError(f"TaskPrompt: empty vocab range [{vocab_start}, {end}) for a vocabulary "
                     f"of {v} tokens")
  replace = (end - vocab_start) < length
  ids = jax.random.choice(rng, jnp.arange(vocab_start, end), (length,), replace=replace)
  return jnp.take(vocab_embeddings, ids, axis=0)


def token_rows(vocab_embeddings: Array, token_ids: Sequence[int], length: int) -> Array:
  """Embeddings of ``token_ids`` cycled (or truncated) to ``length`` rows: ``[length, H]``."""
  if not token_ids:
    raise ValueError("TaskPrompt: init='tokens' needs non-empty init_token_ids")
  v = vocab_embeddings.shape[0]
  bad = [t for t in token_ids if not 0 <= int(t) < v]
  if bad:
    raise ValueError(f"TaskPrompt: init_token_ids {bad} outside the vocabulary [0, {v})")
  ids = np.resize(np.asarray(token_ids, np.int32), length)
  return jnp.take(vocab_embeddings, jnp.asarray(ids), axis=0)


class TaskPrompt(nn.Module):
  """Learned task prompt; ``__call__(vocab_embeddings=None) -> [P, H]`` (P = ``length``)."""
  length: int = 20
  d_model: Optional[int] = None        # H; PersomaNetwork fills it from the T5 config
  init_method: str = "uniform"
  init_scale: float = 0.5
  vocab_start: int = 0
  vocab_end: Optional[int] = 5000
  init_token_ids: tuple[int, ...] = ()
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, vocab_embeddings: Optional[Array] = None) -> Array:
    if self.init_method not in PROMPT_INITS:
      raise ValueError(f"TaskPrompt.init_method={self.init_method!r} is unknown; choose one of "
                       f"{PROMPT_INITS}")
    if self.d_model is None:
      raise ValueError("TaskPrompt.d_model is not set (PersomaNetwork sets it from the T5 config)")
    if self.length < 1:
      raise ValueError(f"TaskPrompt.length must be >= 1, got {self.length}")

    def init_fn(rng, shape, dtype):
      if self.init_method == "uniform":
        return jax.random.uniform(rng, shape, dtype, -self.init_scale, self.init_scale)
      if self.init_method == "normal":
        return self.init_scale * jax.random.normal(rng, shape, dtype)
      if vocab_embeddings is None:
        raise ValueError(f"TaskPrompt.init_method={self.init_method!r} needs vocab_embeddings "
                         "at init")
      if vocab_embeddings.shape[-1] != shape[-1]:
        raise ValueError(f"TaskPrompt: vocab_embeddings width {vocab_embeddings.shape[-1]} != "
                         f"d_model {shape[-1]}")
      if self.init_method == "vocab":
        rows = sample_vocab_rows(rng, vocab_embeddings, shape[0], self.vocab_start,
                                 self.vocab_end)
      else:
        rows = token_rows(vocab_embeddings, self.init_token_ids, shape[0])
      return rows.astype(dtype)

    return self.param("prompt", nn.with_logical_partitioning(init_fn, ("prompt", "embed")),
                      (self.length, self.d_model), self.param_dtype)


def init_prompt_from_embeddings(params: Any, rng: Array, *, init: str = "vocab",
                                vocab_start: int = 0, vocab_end: Optional[int] = 5000,
                                init_token_ids: Sequence[int] = ()) -> Any:
  """Returns ``params`` with ``task_prompt/prompt`` re-initialised from ``token_embedder``.

  For use after restoring a T5X checkpoint, so the prompt starts from the *pretrained*
  vocabulary embeddings. ``params`` is the PersomaNetwork param dict (T5 tree at top level).
  """
  if init not in ("vocab", "tokens"):
    raise ValueError(f"init_prompt_from_embeddings: init must be 'vocab' or 'tokens', got {init!r}")
  try:
    table = params["token_embedder"]["embedding"]
    old = params["task_prompt"]["prompt"]
  except KeyError as e:
    raise ValueError(f"init_prompt_from_embeddings: params lack {e} (need token_embedder/"
                     "embedding and task_prompt/prompt)") from None
  length = old.shape[0]
  if init == "vocab":
    rows = sample_vocab_rows(rng, jnp.asarray(table), length, vocab_start, vocab_end)
  else:
    rows = token_rows(jnp.asarray(table), tuple(init_token_ids), length)
  new = dict(params)
  new["task_prompt"] = dict(params["task_prompt"], prompt=rows.astype(old.dtype))
  return new
