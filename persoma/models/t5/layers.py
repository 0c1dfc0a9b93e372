"""T5 v1.1 building blocks with T5X's parameter names, shapes, logical axes and numerics.

- `LayerNorm`: RMS norm (no mean, no bias), `scale [H]` ('embed').
- `RelativePositionBiases`: `rel_embedding [heads, buckets]` ('heads', 'relpos_buckets').
- `MultiHeadDotProductAttention`: `query/key/value/kernel [H, heads*head_dim]` ('embed','joined_kv'),
  `out/kernel [heads*head_dim, H]`; the 1/sqrt(head_dim) factor is folded into the query init, the
  forward applies no scaling; masked logits get a -1e10 bias; optional KV cache ('cache').
- `MlpBlock`: `wi_0`, `wi_1 [H, mlp]` ('embed','mlp'), `wo [mlp, H]`.
- `Embed`: `embedding [vocab, H]` ('vocab', 'embed').
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from persoma.models.t5.config import T5Config
from persoma.models.t5.lora import DenseGeneral

NEG_BIAS = -1e10  # T5X's additive bias for masked attention logits


def _activation(name: str) -> Callable[[jax.Array], jax.Array]:
  if name == "linear":
    return lambda x: x
  if name == "gelu":
    return functools.partial(jax.nn.gelu, approximate=True)  # flax nn.gelu default
  if name == "gelu_exact":
    return functools.partial(jax.nn.gelu, approximate=False)
  if name == "relu":
    return jax.nn.relu
  if name in ("silu", "swish"):
    return jax.nn.silu
  raise ValueError(f"unknown activation {name!r}")


class Dropout(nn.Module):
  """Dropout whose mask is shared along `broadcast_dims` (T5X uses (-2,): same over length)."""

  rate: float
  broadcast_dims: tuple[int, ...] = (-2,)

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    shape = list(x.shape)
    for d in self.broadcast_dims:
      shape[d] = 1
    keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.rate, shape)
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


class LayerNorm(nn.Module):
  """T5 RMS norm: `x * rsqrt(mean(x^2) + eps) * scale`, computed in float32. `[..., H]`."""

  epsilon: float = 1e-6
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    mean2 = jnp.mean(lax.square(x), axis=-1, keepdims=True)
    y = jnp.asarray(x * lax.rsqrt(mean2 + self.epsilon), self.dtype)
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
                       (x.shape[-1],), jnp.float32)
    return y * jnp.asarray(scale, self.dtype)


class Embed(nn.Module):
  """Token embedding `embedding [vocab, H]`: `[B, L]` int -> `[B, L, H]`; `attend` for tied logits."""

  num_embeddings: int
  features: int
  dtype: Any = jnp.float32
  embedding_init: Callable = nn.initializers.normal(stddev=1.0)

  def setup(self):
    self.embedding = self.param(
        "embedding", nn.with_logical_partitioning(self.embedding_init, ("vocab", "embed")),
        (self.num_embeddings, self.features), jnp.float32)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"Embed: token ids must be integers, got dtype {tokens.dtype}")
    return jnp.take(jnp.asarray(self.embedding, self.dtype), tokens, axis=0)

  def attend(self, query: jax.Array) -> jax.Array:
    """`[..., H]` -> `[..., vocab]` dot products with every embedding."""
    return jnp.dot(query, jnp.asarray(self.embedding, self.dtype).T)


def relative_position_buckets(qlen: int, klen: int, bidirectional: bool, num_buckets: int,
                              max_distance: int) -> np.ndarray:
  """`[qlen, klen]` int32 bucket of `key_pos - query_pos` (T5 / Mesh TF bucketing, in numpy).

  Exact offsets below `num_buckets//2` (halved again when bidirectional, the other half holding
  the sign), then logarithmic buckets up to `max_distance`, beyond which all share the last one.
  """
  rel = np.arange(klen, dtype=np.int32)[None, :] - np.arange(qlen, dtype=np.int32)[:, None]
  n = -rel
  ret = np.zeros_like(n)
  if bidirectional:
    num_buckets //= 2
    ret += (n < 0).astype(np.int32) * num_buckets
    n = np.abs(n)
  else:
    n = np.maximum(n, 0)
  max_exact = num_buckets // 2
  is_small = n < max_exact
  with np.errstate(divide="ignore"):
    val_if_large = max_exact + (
        np.log(n.astype(np.float32) / max_exact + np.finfo(np.float32).eps)
        / np.log(max_distance / max_exact) * (num_buckets - max_exact)).astype(np.int32)
  val_if_large = np.minimum(val_if_large, num_buckets - 1)
  return (ret + np.where(is_small, n, val_if_large)).astype(np.int32)


class RelativePositionBiases(nn.Module):
  """Learned per-head bias by relative-position bucket: returns `[1, heads, qlen, klen]`."""

  num_buckets: int
  max_distance: int
  num_heads: int
  dtype: Any = jnp.float32
  embedding_init: Callable = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")

  @nn.compact
  def __call__(self, qlen: int, klen: int, bidirectional: bool = True) -> jax.Array:
    buckets = relative_position_buckets(qlen, klen, bidirectional, self.num_buckets,
                                        self.max_distance)
    table = self.param(
        "rel_embedding",
        nn.with_logical_partitioning(self.embedding_init, ("heads", "relpos_buckets")),
        (self.num_heads, self.num_buckets), jnp.float32)
    values = jnp.take(jnp.asarray(table, self.dtype), jnp.asarray(buckets), axis=1)  # [h, q, k]
    return values[None]


def make_attention_mask(query_valid: jax.Array, key_valid: jax.Array, dtype=jnp.float32
                        ) -> jax.Array:
  """`[B, Q]`, `[B, K]` (bool/int) -> `[B, 1, Q, K]` with 1 where both are valid."""
  mask = jnp.logical_and(query_valid[:, :, None] > 0, key_valid[:, None, :] > 0)
  return mask[:, None].astype(dtype)


def make_causal_mask(length: int, dtype=jnp.float32) -> jax.Array:
  """`[1, 1, T, T]` lower-triangular (query attends to keys at or before it)."""
  idx = jnp.arange(length)
  return (idx[None, :] <= idx[:, None])[None, None].astype(dtype)


class MultiHeadDotProductAttention(nn.Module):
  """T5X multi-head attention. `inputs_q [B, Q, H]`, `inputs_kv [B, K, H]` -> `[B, Q, H]`.

  `mask [B|1, 1, Q, K]` (1 = attend) becomes a -1e10 additive bias; `bias [1, heads, Q, K]` is the
  relative position bias. With `decode=True` the module keeps `cached_key`/`cached_value`
  `[B, maxlen, heads, head_dim]` and `cache_index` in the 'cache' collection: the first call (at
  init, full-length inputs) only creates them; later calls take one query position `[B, 1, H]`,
  write its key/value at `cache_index`, attend to positions `<= cache_index`, and take row
  `cache_index` of the full `[1, heads, maxlen, maxlen]` bias.
  With `decode=True, static_kv=True` (cross-attention: `inputs_kv` is the fixed encoder output)
  the first call projects and stores `cross_key`/`cross_value` `[B, S, heads, head_dim]`, and
  later calls reuse them instead of re-projecting the encoder output at every step.
  """

  config: T5Config

  @nn.compact
  def __call__(self, inputs_q: jax.Array, inputs_kv: jax.Array, mask: jax.Array | None = None,
               bias: jax.Array | None = None, deterministic: bool = True,
               decode: bool = False, static_kv: bool = False) -> jax.Array:
    cfg = self.config
    dtype = cfg.jnp_dtype
    base_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    depth_scaling = math.sqrt(cfg.head_dim)

    def query_init(*args):
      return base_init(*args) / jnp.asarray(depth_scaling, jnp.float32)

    def projection(name, init):
      rank = cfg.lora_rank if name in cfg.lora_targets else 0
      return DenseGeneral(features=(cfg.num_heads, cfg.head_dim), axis=-1,
                          kernel_axes=("embed", "joined_kv"), dtype=dtype, kernel_init=init,
                          lora_rank=rank, lora_alpha=cfg.lora_alpha, name=name)

    query = projection("query", query_init)(inputs_q)  # [B, Q, h, d]
    if decode and static_kv and self.has_variable("cache", "cross_key"):
      key = self.get_variable("cache", "cross_key")  # projected once, at cache creation
      value = self.get_variable("cache", "cross_value")
    else:
      key = projection("key", base_init)(inputs_kv)  # [B, K, h, d]
      value = projection("value", base_init)(inputs_kv)
      if decode and static_kv:
        self.put_variable("cache", "cross_key", key)
        self.put_variable("cache", "cross_value", value)
    query = nn.with_logical_constraint(query, ("batch", "length", "heads", "kv"))
    key = nn.with_logical_constraint(key, ("batch", "length", "heads", "kv"))
    value = nn.with_logical_constraint(value, ("batch", "length", "heads", "kv"))

    if decode and not static_kv:
      initialized = self.has_variable("cache", "cached_key")
      cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
      cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
      cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
      if initialized:
        batch, max_len, heads, head_dim = cached_key.value.shape
        if query.shape[1] != 1:
          raise ValueError(f"decode=True expects one query position per step, got "
                           f"{query.shape[1]} (inputs_q shape {inputs_q.shape})")
        if key.shape[0] != batch:
          raise ValueError(f"decode cache was built for batch {batch}, got {key.shape[0]}")
        idx = cache_index.value
        key = lax.dynamic_update_slice(cached_key.value, key, (0, idx, 0, 0))
        value = lax.dynamic_update_slice(cached_value.value, value, (0, idx, 0, 0))
        cached_key.value, cached_value.value = key, value
        cache_index.value = idx + 1
        step_mask = (jnp.arange(max_len) <= idx)[None, None, None, :].astype(jnp.float32)
        mask = step_mask if mask is None else mask * step_mask
        if bias is not None:
          bias = lax.dynamic_slice_in_dim(bias, idx, 1, axis=-2)  # [1, h, 1, maxlen]

    attn_bias = None
    if mask is not None:
      attn_bias = lax.select(mask > 0, jnp.zeros(mask.shape, dtype),
                             jnp.full(mask.shape, NEG_BIAS, dtype))
    if bias is not None:
      attn_bias = bias.astype(dtype) if attn_bias is None else attn_bias + bias.astype(dtype)

    if cfg.float32_attention_logits:
      query, key = query.astype(jnp.float32), key.astype(jnp.float32)
    logits = jnp.einsum("bqhd,bkhd->bhqk", query, key)  # [B, h, Q, K]
    if attn_bias is not None:
      logits = logits + attn_bias.astype(logits.dtype)
    weights = jax.nn.softmax(logits).astype(dtype)
    if not deterministic and cfg.dropout_rate > 0.0:
      keep_shape = list(weights.shape)
      keep_shape[-2] = 1  # same dropout mask for every query position
      keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - cfg.dropout_rate, keep_shape)
      weights = weights * (keep.astype(dtype) / jnp.asarray(1.0 - cfg.dropout_rate, dtype))
    x = jnp.einsum("bhqk,bkhd->bqhd", weights, value)  # [B, Q, h, d]

    out_rank = cfg.lora_rank if "out" in cfg.lora_targets else 0
    return DenseGeneral(features=inputs_q.shape[-1], axis=(-2, -1),
                        kernel_axes=("joined_kv", "embed"), dtype=dtype, kernel_init=base_init,
                        lora_rank=out_rank, lora_alpha=cfg.lora_alpha, name="out")(x)


class MlpBlock(nn.Module):
  """Gated MLP: `prod_i act_i(x @ wi_i) @ wo`. `[B, L, H]` -> `[B, L, H]`."""

  config: T5Config

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    cfg = self.config
    dtype = cfg.jnp_dtype
    init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
    acts = cfg.mlp_activations
    hidden = None
    for i, act in enumerate(acts):
      name = "wi" if len(acts) == 1 else f"wi_{i}"
      rank = cfg.lora_rank if (name in cfg.lora_targets or "wi" in cfg.lora_targets) else 0
      h = DenseGeneral(cfg.mlp_dim, kernel_axes=("embed", "mlp"), dtype=dtype, kernel_init=init,
                       lora_rank=rank, lora_alpha=cfg.lora_alpha, name=name)(x)
      h = _activation(act)(h)
      hidden = h if hidden is None else hidden * h
    hidden = Dropout(cfg.dropout_rate)(hidden, deterministic)
    hidden = nn.with_logical_constraint(hidden, ("batch", "length", "mlp"))
    rank = cfg.lora_rank if "wo" in cfg.lora_targets else 0
    return DenseGeneral(x.shape[-1], kernel_axes=("mlp", "embed"), dtype=dtype, kernel_init=init,
                        lora_rank=rank, lora_alpha=cfg.lora_alpha, name="wo")(hidden)
