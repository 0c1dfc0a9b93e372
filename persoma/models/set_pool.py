"""Set-pooling adapter (Deep Sets): a persoma addition beside the papers' three adapters.

The PERSOMA labels are per-genre statistics of the whole history (which genres a user rates
high or low on average). The papers' adapters hand the LM one token per item (MLP,
Transformer) or R resampled latents (Perceiver), so the LM itself must learn to average ratings
per genre across N tokens. ``SetPoolAdapter`` builds that average into the adapter:

  phi:  ``num_layers`` dense layers (GELU) on each item           ``[B, N, D] -> [B, N, W]``
  pool: masked mean over the items, plus ``log(1 + n_items)``     ``-> [B, W + 1]``
        (``pooling='ratio'`` adds C gated ratio channels, below)   ``-> [B, W + 1 + 2C]``
  rho:  layer norm, dense + GELU, dense to ``summary_tokens`` x H  ``-> [B, K, H]``

A sum of per-item features ``phi(genres_i, rating_i)`` divided by the item count can express
per-genre rating means and genre shares exactly, which is what the label rule computes, and the
output is invariant to the order of the history. ``K = summary_tokens`` (default 8) prompt
tokens for any N, so, like the Perceiver, the encoder input does not grow with the history.

``pooling='ratio'`` builds the ratio into the pooling instead of leaving rho to learn a division:
each of ``ratio_channels`` channels c has a per-item gate ``g_ic = sigmoid(a_c . phi_i)`` and
value ``v_ic = b_c . phi_i`` and pools ``sum_i g_ic v_ic / (1 + sum_i g_ic)`` together with
``log(1 + sum_i g_ic)``. With g the indicator of a genre and v the rating, a channel is that
genre's mean rating (shrunk by one pseudo-item at 0) and its count: the statistics of the rule.

An all-masked history (no items): every prompt vector is zero and the prompt mask is zero (the
T5 attends to none of them); values and gradients stay finite.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from persoma.models import adapters

Array = jax.Array
POOLINGS = ("mean", "ratio")


class SetPoolAdapter(adapters.Adapter):
  """``[B, N, D] -> ([B, K, H], mask [B, K])``, ``K = summary_tokens``; see module docstring."""
  summary_tokens: int = 8
  num_layers: int = 2     # layers of the per-item MLP phi
  hidden_dim: int = 1024  # W, width of phi and rho
  pooling: str = "mean"   # 'mean' | 'ratio' (adds ratio_channels gated ratio channels)
  ratio_channels: int = 64  # C, used when pooling == 'ratio'

  def num_tokens(self, num_items: int) -> int:
    return self.summary_tokens

  @nn.compact
  def __call__(self, history_embeddings: Array, history_mask: Array,
               enable_dropout: bool = False) -> tuple[Array, Array]:
    mask = self._check(history_embeddings, history_mask)  # [B, N] float32
    if self.num_layers < 1 or self.summary_tokens < 1:
      raise ValueError("SetPoolAdapter.num_layers and .summary_tokens must be >= 1, got "
                       f"{self.num_layers} and {self.summary_tokens}")
    if self.pooling not in POOLINGS or self.ratio_channels < 1:
      raise ValueError(f"SetPoolAdapter.pooling must be one of {POOLINGS} and .ratio_channels "
                       f">= 1, got {self.pooling!r} and {self.ratio_channels}")
    drop = nn.Dropout(self.dropout_rate)
    x = history_embeddings.astype(self.dtype)
    in_axis = "history_embed"
    for i in range(self.num_layers):
      x = nn.gelu(adapters.dense(self.hidden_dim, (in_axis, "mlp"), f"phi_{i}", self.dtype)(x))
      x = drop(x, deterministic=not enable_dropout)
      in_axis = "mlp"
    count = jnp.sum(mask, axis=1, keepdims=True)  # [B, 1]
    pooled = jnp.einsum("bnw,bn->bw", x, mask.astype(x.dtype)) / jnp.maximum(count, 1.0)
    parts = [pooled, jnp.log1p(count).astype(x.dtype)]
    if self.pooling == "ratio":
      parts += self._ratio_pool(x, mask)
    pooled = jnp.concatenate(parts, axis=-1)
    h = adapters.layer_norm("pool_norm", self.dtype)(pooled)
    h = nn.gelu(adapters.dense(self.hidden_dim, ("embed", "mlp"), "rho_hidden", self.dtype)(h))
    h = drop(h, deterministic=not enable_dropout)
    out = nn.DenseGeneral(
        (self.summary_tokens, self.d_model), dtype=self.dtype, name="rho_out",
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                 ("mlp", "prompt", "embed")),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                               ("prompt", "embed")))(h)  # [B, K, H]
    has_items = (count > 0).astype(jnp.float32)  # [B, 1]
    out_mask = jnp.broadcast_to(has_items, out.shape[:2])
    return out * out_mask[..., None].astype(out.dtype), out_mask.astype(jnp.int32)

  def _ratio_pool(self, x: Array, mask: Array) -> list[Array]:
    """``[B, N, W]`` item features -> ``[B, C]`` gated means and ``[B, C]`` log gate totals."""
    axes = ("mlp", "pool_channels")
    gate = jax.nn.sigmoid(adapters.dense(self.ratio_channels, axes, "ratio_gate", self.dtype)(x))
    value = adapters.dense(self.ratio_channels, axes, "ratio_value", self.dtype)(x)
    return list(gated_ratio(gate, value, mask))


def gated_ratio(gate: Array, value: Array, mask: Array) -> tuple[Array, Array]:
  """Per channel, the gate-weighted mean of the values over the unmasked items.

  Args:
    gate: ``[B, N, C]`` weights in [0, 1]; value: ``[B, N, C]``; mask: ``[B, N]`` (1 = item).
  Returns:
    ``sum_i m_i g_ic v_ic / (1 + sum_i m_i g_ic)`` and ``log(1 + sum_i m_i g_ic)``, each
    ``[B, C]``: the mean shrunk toward 0 by one pseudo-item, so it stays finite and smooth for
    channels that gate no item.
  """
  gate = gate * mask[..., None].astype(gate.dtype)  # padding weighs nothing
  total = jnp.sum(gate, axis=1)
  return jnp.sum(gate * value, axis=1) / (1.0 + total), jnp.log1p(total)
