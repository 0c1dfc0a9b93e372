"""History adapters: user history embeddings -> soft-prompt tokens for the T5 encoder.

Every adapter maps ``history_embeddings [B, N, D]`` (one sentence-encoder vector per rated item,
time order, zero rows past the end) and ``history_mask [B, N]`` (1 = real item) to
``(prompts [B, P, H], prompt_mask [B, P] int32)`` where ``H = d_model`` of the T5:

* ``MLPAdapter`` (``'mlp'``): ``num_layers`` (default 3) dense layers applied to each item
  separately; one prompt token per item, ``P = N``, ``prompt_mask = history_mask`` (with
  ``length_token``, one more token after the items: ``P = N + 1``).
* ``TransformerAdapter`` (``'transformer'``): input projection, learned item positions and
  ``num_layers`` (default 1) pre-LN transformer layers over the item sequence; ``P = N``.
* ``PerceiverAdapter`` (``'perceiver'``): ``num_latents`` learned latents (R, default 20)
  refined by ``num_layers`` (default 4) layers of masked cross-attention to the items plus an
  MLP; resamples any ``N <= max_items`` to ``P = R`` tokens.

All-masked history (a user with no items), defined behaviour: the output is finite (attention
uses a finite ``-1e10`` bias, never ``-inf``), every prompt vector is zero and ``prompt_mask``
is all zero, so the T5 attends to none of the user tokens. For the perceiver the row's R latents
are masked out together.

``d_model`` may be left ``None``; ``PersomaNetwork`` fills it from the T5 config.
``input_dim`` (D) is required so a wrong embedding width fails with a clear error.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any

# Names of the per-item genre [B, N, G] and star [B, N, S] logits an adapter may sow into the
# 'intermediates' collection (genre_stats always; mlp with item_heads).
ITEM_GENRE_LOGITS = "item_genre_logits"
ITEM_STAR_LOGITS = "item_star_logits"

# Finite bias for masked attention keys: a fully masked row becomes a uniform average instead of
# NaN (softmax of all -inf is NaN).
MASK_BIAS = -1e10


def _kernel(names: tuple[str, str], init=None):
  return nn.with_logical_partitioning(init or nn.initializers.lecun_normal(), names)


def dense(features: int, names: tuple[str, str], name: str, dtype: Dtype,
           use_bias: bool = True) -> nn.Dense:
  """A Dense layer whose kernel ([in, out]) and bias ([out]) carry logical axis names."""
  return nn.Dense(
      features, use_bias=use_bias, dtype=dtype, name=name,
      kernel_init=_kernel(names),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (names[1],)))


# Output projection W -> H: the input side is labelled 'mlp' (not 'embed') so the two dims of the
# kernel never map to the same mesh axis.
OUT_AXES = ("mlp", "embed")


def layer_norm(name: str, dtype: Dtype) -> nn.LayerNorm:
  return nn.LayerNorm(
      dtype=dtype, name=name,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)))


def validate_history(owner: str, history_embeddings: Array, history_mask: Array,
                     input_dim: Optional[int], max_items: int) -> Array:
  """Checks static shapes of an adapter's inputs; returns the mask as float32 ``[B, N]``.

  Raises:
    ValueError: naming ``owner`` and the offending argument/field.
  """
  if input_dim is None:
    raise ValueError(f"{owner}.input_dim is not set: give the width D of history_embeddings "
                     "(e.g. 384 for all-MiniLM-L6-v2, 3*384 for the uem format)")
  if history_embeddings.ndim != 3:
    raise ValueError(f"{owner}: history_embeddings must be [B, N, D], got shape "
                     f"{tuple(history_embeddings.shape)}")
  b, n, d = history_embeddings.shape
  if d != input_dim:
    raise ValueError(f"{owner}: history_embeddings width D={d} but {owner}.input_dim="
                     f"{input_dim} (the sentence encoder / item format does not match the "
                     "adapter config)")
  if n > max_items:
    raise ValueError(f"{owner}: history has N={n} items, more than {owner}.max_items="
                     f"{max_items}; raise max_items or shorten the history")
  if history_mask is None:
    raise ValueError(f"{owner}: history_mask [B, N] is required")
  if tuple(history_mask.shape) != (b, n):
    raise ValueError(f"{owner}: history_mask shape {tuple(history_mask.shape)} does not match "
                     f"history_embeddings [B, N] = {(b, n)}")
  return (history_mask > 0).astype(jnp.float32)


def history_length(mask: Array) -> Array:
  """``[B, N]`` item mask -> ``[B, 2]``: ``log1p`` of the number of items shown, and 1 where
  fewer than ``N`` are (the sampler showed the user's whole history), else 0."""
  n = mask.astype(jnp.float32).sum(axis=1)  # [B]
  return jnp.stack([jnp.log1p(n), (n < mask.shape[1]).astype(jnp.float32)], axis=-1)


def attention_bias(query_mask: Optional[Array], key_mask: Array) -> Array:
  """Additive attention bias ``[B, 1, Q, K]`` from a key mask ``[B, K]`` (and query mask)."""
  ok = key_mask[:, None, None, :] > 0
  if query_mask is not None:
    ok = jnp.logical_and(ok, query_mask[:, None, :, None] > 0)
  return jnp.where(ok, 0.0, MASK_BIAS).astype(jnp.float32)


class MultiHeadAttention(nn.Module):
  """Multi-head dot-product attention, ``inputs_q [B, Q, W]`` x ``inputs_kv [B, K, W']``.

  ``bias`` is ``[B, 1, Q, K]`` (additive). Returns ``[B, Q, W]``.
  """
  num_heads: int
  head_dim: int
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs_q: Array, inputs_kv: Array, bias: Array,
               deterministic: bool = True) -> Array:
    width = inputs_q.shape[-1]
    joined = self.num_heads * self.head_dim

    def proj(name, x):
      y = dense(joined, ("embed", "joined_kv"), name, self.dtype, use_bias=False)(x)
      return y.reshape(y.shape[:-1] + (self.num_heads, self.head_dim))

    q = proj("query", inputs_q) / jnp.sqrt(self.head_dim).astype(self.dtype)
    k = proj("key", inputs_kv)
    v = proj("value", inputs_kv)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) + bias
    weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    weights = nn.Dropout(self.dropout_rate)(weights, deterministic=deterministic)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(inputs_q.shape[:-1] + (joined,))
    return dense(width, ("joined_kv", "embed"), "out", self.dtype, use_bias=False)(out)


class MlpBlock(nn.Module):
  """Position-wise ``W -> mlp_dim -> W`` GELU MLP on ``[B, S, W]``."""
  mlp_dim: int
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    h = nn.gelu(dense(self.mlp_dim, ("embed", "mlp"), "wi", self.dtype)(x))
    h = nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    return dense(x.shape[-1], ("mlp", "embed"), "wo", self.dtype)(h)


class TransformerLayer(nn.Module):
  """Pre-LN transformer layer. ``x [B, S, W]``, ``mask [B, S]`` -> ``[B, S, W]``.

  With ``context`` (``[B, K, W]`` + ``context_mask [B, K]``) the attention is cross-attention
  from ``x`` to ``context`` (perceiver layer); otherwise masked self-attention.
  """
  num_heads: int
  head_dim: int
  mlp_dim: int
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, mask: Optional[Array], context: Optional[Array] = None,
               context_mask: Optional[Array] = None, deterministic: bool = True) -> Array:
    drop = nn.Dropout(self.dropout_rate)
    h = layer_norm("pre_attention_layer_norm", self.dtype)(x)
    if context is None:
      kv, bias = h, attention_bias(mask, mask)
    else:
      kv = layer_norm("pre_context_layer_norm", self.dtype)(context)
      bias = attention_bias(None, context_mask)
    h = MultiHeadAttention(self.num_heads, self.head_dim, self.dropout_rate, self.dtype,
                           name="attention")(h, kv, bias, deterministic)
    x = x + drop(h, deterministic=deterministic)
    h = layer_norm("pre_mlp_layer_norm", self.dtype)(x)
    h = MlpBlock(self.mlp_dim, self.dropout_rate, self.dtype, name="mlp")(h, deterministic)
    return x + drop(h, deterministic=deterministic)


class Adapter(nn.Module):
  """Base class: fields shared by all adapters (see module docstring for the contract)."""
  d_model: Optional[int] = None      # H, filled from the T5 config by PersomaNetwork if None
  input_dim: Optional[int] = None    # D, width of history_embeddings
  max_items: int = 512               # largest N accepted (size of the item-position table)
  dropout_rate: float = 0.0
  dtype: Dtype = jnp.float32

  def num_tokens(self, num_items: int) -> int:
    """Number of prompt tokens P produced for a history of ``num_items`` items."""
    return num_items

  @property
  def sows_item_logits(self) -> bool:
    """True when the adapter sows per-item genre / star logits (``ITEM_*_LOGITS``)."""
    return False

  def _check(self, history_embeddings: Array, history_mask: Array) -> Array:
    owner = type(self).__name__
    if self.d_model is None:
      raise ValueError(f"{owner}.d_model is not set (PersomaNetwork sets it from the T5 config)")
    return validate_history(owner, history_embeddings, history_mask, self.input_dim,
                            self.max_items)


class MLPAdapter(Adapter):
  """Per-item MLP: ``[B, N, D] -> [B, N, H]``; ``num_layers`` dense layers (GELU between).

  ``item_heads`` (a persoma addition, off by default as in the paper): two linear heads read
  each output token, genre logits ``[B, N, num_genres]`` and star logits ``[B, N, num_stars]``,
  sown into ``intermediates`` under ``ITEM_GENRE_LOGITS`` / ``ITEM_STAR_LOGITS`` so that
  ``PersomaModel.item_loss_weight`` can supervise the tokens item by item (see
  ``genre_stats.item_loss``). The heads do not change the prompt tokens.

  ``length_token`` (a persoma addition, off by default): one more token after the items, a
  dense map of :func:`history_length` (``log1p`` of the items shown and whether fewer than
  ``N`` are), so ``P = N + 1``. A sampler shows the whole history of a user with fewer than
  ``N`` ratings, whose labels the label rule gives exactly; a longer history's can only be
  estimated, and the per-item tokens do not say which case a row is. The token is zero and
  masked out for a row with no items.
  """
  num_layers: int = 3
  hidden_dim: int = 1024
  item_heads: bool = False
  num_genres: int = 19
  num_stars: int = 5
  length_token: bool = False

  def num_tokens(self, num_items: int) -> int:
    return num_items + int(self.length_token)

  @property
  def sows_item_logits(self) -> bool:
    return self.item_heads

  @nn.compact
  def __call__(self, history_embeddings: Array, history_mask: Array,
               enable_dropout: bool = False) -> tuple[Array, Array]:
    mask = self._check(history_embeddings, history_mask)
    if self.num_layers < 1:
      raise ValueError(f"MLPAdapter.num_layers must be >= 1, got {self.num_layers}")
    x = history_embeddings.astype(self.dtype)
    in_axis = "history_embed"
    for i in range(self.num_layers - 1):
      x = nn.gelu(dense(self.hidden_dim, (in_axis, "mlp"), f"layers_{i}", self.dtype)(x))
      x = nn.Dropout(self.dropout_rate)(x, deterministic=not enable_dropout)
      in_axis = "mlp"
    x = dense(self.d_model, (in_axis, "embed"), f"layers_{self.num_layers - 1}", self.dtype)(x)
    if self.item_heads:
      self.sow("intermediates", ITEM_GENRE_LOGITS,
               dense(self.num_genres, ("embed", "genres"), "item_genre_head", self.dtype)(x))
      self.sow("intermediates", ITEM_STAR_LOGITS,
               dense(self.num_stars, ("embed", "stars"), "item_star_head", self.dtype)(x))
    tokens, token_mask = x * mask[..., None].astype(x.dtype), mask.astype(jnp.int32)
    if self.length_token:
      present = (mask.sum(axis=1) > 0).astype(jnp.int32)  # [B]
      length = dense(self.d_model, ("length_features", "embed"), "length_token",
                     self.dtype)(history_length(mask).astype(self.dtype))  # [B, H]
      length = length * present[:, None].astype(length.dtype)
      tokens = jnp.concatenate([tokens, length[:, None]], axis=1)  # [B, N + 1, H]
      token_mask = jnp.concatenate([token_mask, present[:, None]], axis=1)
    return tokens, token_mask


class ItemEncoder(nn.Module):
  """Projects items ``[B, N, D] -> [B, N, W]`` and adds learned positions (``max_items`` rows)."""
  width: int
  max_items: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, history_embeddings: Array) -> Array:
    x = dense(self.width, ("history_embed", "embed"), "input_projection",
               self.dtype)(history_embeddings.astype(self.dtype))
    pos = self.param("position_embedding",
                     nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                  ("prompt", "embed")),
                     (self.max_items, self.width), jnp.float32)
    return x + pos[None, : x.shape[1]].astype(self.dtype)


class TransformerAdapter(Adapter):
  """Transformer over the item sequence: ``[B, N, D] -> [B, N, H]`` (one token per item)."""
  num_layers: int = 1
  width: int = 256
  num_heads: int = 4
  mlp_dim: int = 1024

  @nn.compact
  def __call__(self, history_embeddings: Array, history_mask: Array,
               enable_dropout: bool = False) -> tuple[Array, Array]:
    mask = self._check(history_embeddings, history_mask)
    x = ItemEncoder(self.width, self.max_items, self.dtype, name="items")(history_embeddings)
    for i in range(self.num_layers):
      x = TransformerLayer(self.num_heads, self.width // self.num_heads, self.mlp_dim,
                           self.dropout_rate, self.dtype, name=f"layers_{i}")(
                               x, mask, deterministic=not enable_dropout)
    x = layer_norm("output_norm", self.dtype)(x)
    x = dense(self.d_model, OUT_AXES, "output_projection", self.dtype)(x)
    return x * mask[..., None].astype(x.dtype), mask.astype(jnp.int32)


class PerceiverAdapter(Adapter):
  """Perceiver resampler: ``[B, N, D] -> [B, R, H]`` with ``R = num_latents`` for any N."""
  num_latents: int = 20
  num_layers: int = 4
  width: int = 256
  num_heads: int = 4
  mlp_dim: int = 1024

  def num_tokens(self, num_items: int) -> int:
    return self.num_latents

  @nn.compact
  def __call__(self, history_embeddings: Array, history_mask: Array,
               enable_dropout: bool = False) -> tuple[Array, Array]:
    mask = self._check(history_embeddings, history_mask)
    items = ItemEncoder(self.width, self.max_items, self.dtype, name="items")(
        history_embeddings)
    latents = self.param("latents",
                         nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                      ("latents", "embed")),
                         (self.num_latents, self.width), jnp.float32)
    x = jnp.broadcast_to(latents.astype(self.dtype)[None],
                         (items.shape[0],) + latents.shape)
    for i in range(self.num_layers):
      x = TransformerLayer(self.num_heads, self.width // self.num_heads, self.mlp_dim,
                           self.dropout_rate, self.dtype, name=f"layers_{i}")(
                               x, None, context=items, context_mask=mask,
                               deterministic=not enable_dropout)
    x = layer_norm("output_norm", self.dtype)(x)
    x = dense(self.d_model, OUT_AXES, "output_projection", self.dtype)(x)
    has_items = (jnp.sum(mask, axis=1, keepdims=True) > 0).astype(jnp.float32)  # [B, 1]
    out_mask = jnp.broadcast_to(has_items, x.shape[:2])
    return x * out_mask[..., None].astype(x.dtype), out_mask.astype(jnp.int32)


ADAPTERS: dict[str, type[Adapter]] = {
    "mlp": MLPAdapter,
    "transformer": TransformerAdapter,
    "perceiver": PerceiverAdapter,
}


def adapter_fields(cls: type[Adapter]) -> list[str]:
  """Names of the configurable dataclass fields of an adapter class."""
  return [f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")]
