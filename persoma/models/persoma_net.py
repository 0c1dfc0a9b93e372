"""PersomaNetwork: the T5 with a user-history soft prompt and a learned task prompt.

Encoder input by ``composition``:

* ``'persoma'``: ``[P_u ; T ; X]``: ``P_u = adapter(history) [B, P, H]`` (with its mask), ``T`` the
  task prompt ``[Pt, H]`` (``task_prompt_length``, 0 = none), ``X`` the embedded input tokens.
* ``'uem'``: ``[K ; UEM(U) ; I_e]``: the learned prompt ``K`` first, then the user tokens
  (``adapter`` is normally a ``persoma.models.uem.UEM``), then the input tokens.
* ``'text'``: the text-prompt baseline, ``[T ; X]`` (or just ``X`` with ``task_prompt_length=0``);
  no adapter, the history is in the input text.

Param tree: the T5 tree at the TOP level (``token_embedder/embedding``,
``encoder/layers_0/attention/query/kernel``, ...; the T5 shares this module's scope), so T5X
checkpoints load unchanged, plus ``adapter/...`` and ``task_prompt/prompt``.

``adapter.d_model`` / ``task_prompt.d_model`` left ``None`` are filled from ``t5_config.emb_dim``;
``task_prompt.length`` is always taken from ``task_prompt_length``.

``genre_probe`` (a persoma addition, ``persoma.models.genre_probe``): a head on the encoder output
at the first ``genre_probe.num_genres`` task-prompt positions, applied by ``__call__`` (the
training path) and sown for ``PersomaModel.probe_loss_weight``; decoding never runs it.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from persoma.models.adapters import Adapter
from persoma.models.genre_probe import GenreProbe
from persoma.models.prompts import TaskPrompt
from persoma.models.t5.config import T5Config
from persoma.models.t5.network import Transformer

Array = jax.Array
COMPOSITIONS = ("persoma", "uem", "text")


class PersomaNetwork(nn.Module):
  """T5 + adapter + task prompt. See the module docstring for the layouts and the param tree."""
  t5_config: T5Config
  adapter: Optional[Adapter] = None
  task_prompt_length: int = 20
  task_prompt: Optional[TaskPrompt] = None   # init settings; length/d_model filled in
  composition: str = "persoma"
  genre_probe: Optional[GenreProbe] = None

  def __post_init__(self):
    if self.composition not in COMPOSITIONS:
      raise ValueError(f"PersomaNetwork.composition={self.composition!r} is unknown; choose one "
                       f"of {COMPOSITIONS}")
    h = self.t5_config.emb_dim
    if self.composition == "text":
      if self.adapter is not None:
        raise ValueError("PersomaNetwork: composition='text' (text-prompt baseline) takes no "
                         f"adapter, got {type(self.adapter).__name__}")
    elif self.adapter is None:
      raise ValueError(f"PersomaNetwork: composition={self.composition!r} needs an adapter "
                       "(e.g. persoma.models.registry.get_adapter('mlp', input_dim=384))")
    else:
      if self.adapter.d_model is None:
        object.__setattr__(self, "adapter", dataclasses.replace(self.adapter, d_model=h))
      elif self.adapter.d_model != h:
        raise ValueError(f"PersomaNetwork: {type(self.adapter).__name__}.d_model="
                         f"{self.adapter.d_model} but the T5 emb_dim is {h}")
    if self.task_prompt_length < 0:
      raise ValueError(f"PersomaNetwork.task_prompt_length must be >= 0, got "
                       f"{self.task_prompt_length}")
    if self.task_prompt_length:
      tp = self.task_prompt if self.task_prompt is not None else TaskPrompt()
      if tp.d_model not in (None, h):
        raise ValueError(f"PersomaNetwork: TaskPrompt.d_model={tp.d_model} but the T5 emb_dim "
                         f"is {h}")
      object.__setattr__(self, "task_prompt",
                         dataclasses.replace(tp, d_model=h, length=self.task_prompt_length))
    else:
      object.__setattr__(self, "task_prompt", None)
    if self.genre_probe is not None and self.task_prompt_length < self.genre_probe.num_genres:
      raise ValueError(f"PersomaNetwork: the genre probe reads {self.genre_probe.num_genres} "
                       f"task-prompt positions but task_prompt_length={self.task_prompt_length}")
    super().__post_init__()

  def setup(self):
    self.t5 = Transformer(self.t5_config)
    nn.share_scope(self, self.t5)   # T5 params live at the top level, as in T5X

  # ---- prefix -------------------------------------------------------------------------------
  def num_prefix_tokens(self, num_items: int) -> int:
    """Soft tokens placed before the input tokens for a history of ``num_items`` items."""
    n_user = self.adapter.num_tokens(num_items) if self.adapter is not None else 0
    return n_user + self.task_prompt_length

  def prefix(self, batch_size: int, history_embeddings: Optional[Array],
             history_mask: Optional[Array], enable_dropout: bool = False
             ) -> tuple[Optional[Array], Optional[Array]]:
    """Soft prefix ``[B, Lp, H]`` and its mask ``[B, Lp]`` int32 (None, None if empty)."""
    parts, masks = [], []
    if self.task_prompt is not None:
      t = self.task_prompt(self.t5.token_embedder.embedding)          # [Pt, H]
      parts.append(jnp.broadcast_to(t[None], (batch_size,) + t.shape))
      masks.append(jnp.ones((batch_size, t.shape[0]), jnp.int32))
    if self.adapter is not None:
      if history_embeddings is None or history_mask is None:
        raise ValueError(f"PersomaNetwork(composition={self.composition!r}) needs "
                         "history_embeddings [B, N, D] and history_mask [B, N] in the batch")
      if history_embeddings.shape[0] != batch_size:
        raise ValueError(f"history_embeddings batch {history_embeddings.shape[0]} != "
                         f"encoder_input_tokens batch {batch_size}")
      if getattr(self.adapter, "uses_token_embedding", False):  # genre_stats with genre names
        p_u, m_u = self.adapter(history_embeddings, history_mask, enable_dropout,
                                token_embedding=self.t5.token_embedder.embedding)
      else:
        p_u, m_u = self.adapter(history_embeddings, history_mask, enable_dropout)  # [B, P, H]
      at = 0 if self.composition == "persoma" else len(parts)   # uem: after the prompt K
      parts.insert(at, p_u.astype(self.t5_config.jnp_dtype))
      masks.insert(at, m_u)
    if not parts:
      return None, None
    dtype = self.t5_config.jnp_dtype
    return (jnp.concatenate([p.astype(dtype) for p in parts], axis=1),
            jnp.concatenate(masks, axis=1))

  def task_prompt_start(self, num_items: int) -> int:
    """Encoder position of the first task-prompt token (after ``P_u`` for 'persoma')."""
    if self.composition == "persoma":
      return self.adapter.num_tokens(num_items)
    return 0

  # ---- T5-style entry points ----------------------------------------------------------------
  def encode_with_mask(self, encoder_input_tokens: Array,
                       history_embeddings: Optional[Array] = None,
                       history_mask: Optional[Array] = None, enable_dropout: bool = False
                       ) -> tuple[Array, Array]:
    """``encoder_input_tokens [B, L]`` (+ history) -> (encoded ``[B, Lp+L, H]``, mask
    ``[B, Lp+L]`` int32)."""
    prefix, prefix_mask = self.prefix(encoder_input_tokens.shape[0], history_embeddings,
                                      history_mask, enable_dropout)
    encoded = self.t5.encode(encoder_input_tokens, prefix, prefix_mask, enable_dropout)
    token_mask = (encoder_input_tokens > 0).astype(jnp.int32)
    mask = token_mask if prefix_mask is None else jnp.concatenate([prefix_mask, token_mask], 1)
    return encoded, mask

  def encode(self, encoder_input_tokens: Array, history_embeddings: Optional[Array] = None,
             history_mask: Optional[Array] = None, enable_dropout: bool = False) -> Array:
    """Encoder output ``[B, Lp+L, H]`` over ``[prefix ; X]``."""
    return self.encode_with_mask(encoder_input_tokens, history_embeddings, history_mask,
                                 enable_dropout)[0]

  def decode(self, encoded: Array, encoder_mask: Array, decoder_input_tokens: Array,
             decoder_target_tokens: Optional[Array] = None, enable_dropout: bool = False,
             decode: bool = False, max_decode_length: Optional[int] = None) -> Array:
    """The T5 decoder: logits ``[B, T, V]`` (signature of ``Transformer.decode``)."""
    return self.t5.decode(encoded, encoder_mask, decoder_input_tokens, decoder_target_tokens,
                          enable_dropout, decode, max_decode_length)

  def __call__(self, encoder_input_tokens: Array, decoder_input_tokens: Array,
               decoder_target_tokens: Optional[Array] = None,
               history_embeddings: Optional[Array] = None, history_mask: Optional[Array] = None,
               enable_dropout: bool = False) -> Array:
    """Teacher-forced logits ``[B, T, V]`` float32 (runs and sows the genre probe, if any)."""
    encoded, mask = self.encode_with_mask(encoder_input_tokens, history_embeddings,
                                          history_mask, enable_dropout)
    if self.genre_probe is not None:
      start = self.task_prompt_start(
          history_embeddings.shape[1] if history_embeddings is not None else 0)
      self.genre_probe(encoded[:, start:start + self.genre_probe.num_genres])
    return self.decode(encoded, mask, decoder_input_tokens, decoder_target_tokens,
                       enable_dropout)
