"""UEM: the User Embedding Module (Doddapaneni et al. 2024).

Each history item is embedded as ``num_fields`` texts (the ``uem`` item format: k = 3 texts per
item, e.g. title, genres, rating) by the sentence encoder and concatenated, so
``history_embeddings`` is ``[B, N, k*dim]``. UEM projects each item to ``width``, adds learned
item positions, runs ``num_layers`` (default 3) pre-LN transformer layers over the item sequence
and projects to the T5 width: ``UEM(U) [B, N, H]``, one soft token per item, masked like the
history. It is trained end to end with the LM.

``PersomaNetwork(composition='uem')`` builds the encoder input ``[K ; UEM(U) ; I_e]``: ``K`` is
the learned task prompt (``task_prompt/prompt``), ``UEM(U)`` these tokens and ``I_e`` the
embedded input text. An all-masked history gives zero tokens with a zero mask (never NaN).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax

from persoma.models import adapters

Array = jax.Array


class UEM(adapters.Adapter):
  """User Embedding Module: ``[B, N, k*dim] -> ([B, N, H], mask [B, N])``."""
  num_fields: int = 3
  num_layers: int = 3
  width: int = 256
  num_heads: int = 4
  mlp_dim: int = 1024

  @nn.compact
  def __call__(self, history_embeddings: Array, history_mask: Array,
               enable_dropout: bool = False) -> tuple[Array, Array]:
    mask = self._check(history_embeddings, history_mask)
    if self.num_fields < 1 or self.input_dim % self.num_fields:
      raise ValueError(f"UEM.input_dim={self.input_dim} is not a multiple of UEM.num_fields="
                       f"{self.num_fields} (history_embeddings must concatenate k field "
                       "embeddings per item)")
    x = adapters.ItemEncoder(self.width, self.max_items, self.dtype, name="items")(
        history_embeddings)
    for i in range(self.num_layers):
      x = adapters.TransformerLayer(self.num_heads, self.width // self.num_heads, self.mlp_dim,
                                    self.dropout_rate, self.dtype, name=f"layers_{i}")(
                                        x, mask, deterministic=not enable_dropout)
    x = adapters.layer_norm("output_norm", self.dtype)(x)
    x = adapters.dense(self.d_model, adapters.OUT_AXES, "output_projection", self.dtype)(x)
    return x * mask[..., None].astype(x.dtype), mask.astype("int32")


def field_dim(uem: UEM) -> Optional[int]:
  """Width of one field embedding (``input_dim / num_fields``), or None if unset."""
  return None if uem.input_dim is None else uem.input_dim // uem.num_fields
