"""T5 v1.1 encoder-decoder whose param tree is T5X's, with continuous prefix embeddings.

Param tree (names as in `t5x.examples.t5.network.Transformer`):
`token_embedder/embedding [V, H]`, `encoder/relpos_bias/rel_embedding [heads, 32]`,
`encoder/layers_i/{pre_attention_layer_norm,attention,pre_mlp_layer_norm,mlp}`,
`encoder/encoder_norm/scale`, `decoder/relpos_bias/rel_embedding`,
`decoder/layers_i/{pre_self_attention_layer_norm,self_attention,pre_cross_attention_layer_norm,
encoder_decoder_attention,pre_mlp_layer_norm,mlp}`, `decoder/decoder_norm/scale`,
`decoder/logits_dense/kernel [H, V]` (absent when `logits_via_embedding`).

Usage:
  model = Transformer(T5Config.base())
  variables = model.init(rng, enc_tokens, dec_in, dec_tgt)
  encoded = model.apply(variables, enc_tokens, prefix, prefix_mask, method=model.encode)
  mask = encoder_mask(enc_tokens, prefix_mask)                         # [B, Lp+L]
  logits = model.apply(variables, encoded, mask, dec_in, dec_tgt, method=model.decode)
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from persoma.models.t5 import layers
from persoma.models.t5.config import T5Config
from persoma.models.t5.lora import DenseGeneral


def encoder_mask(encoder_input_tokens: jax.Array, prefix_mask: jax.Array | None = None,
                 prefix_length: int | None = None) -> jax.Array:
  """The mask over the encoder output, `[B, Lp+L]` int32 (1 = real position).

  `encoder_input_tokens [B, L]` (0 = pad). The prefix part is `prefix_mask [B, Lp]` if given,
  else all ones of width `prefix_length` (0 or None = no prefix).
  """
  token_mask = (encoder_input_tokens > 0).astype(jnp.int32)
  if prefix_mask is None:
    if not prefix_length:
      return token_mask
    prefix_mask = jnp.ones((token_mask.shape[0], prefix_length), jnp.int32)
  return jnp.concatenate([jnp.asarray(prefix_mask > 0, jnp.int32), token_mask], axis=1)


class EncoderLayer(nn.Module):
  """Pre-norm self-attention + gated MLP, residuals with dropout. `[B, S, H]` -> `[B, S, H]`."""

  config: T5Config
  relative_embedding: nn.Module

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, deterministic: bool) -> jax.Array:
    cfg = self.config
    dtype = cfg.jnp_dtype
    length = x.shape[-2]
    bias = self.relative_embedding(length, length, True)
    y = layers.LayerNorm(cfg.layer_norm_epsilon, dtype, name="pre_attention_layer_norm")(x)
    y = layers.MultiHeadDotProductAttention(cfg, name="attention")(y, y, mask, bias, deterministic)
    x = x + layers.Dropout(cfg.dropout_rate)(y, deterministic)
    y = layers.LayerNorm(cfg.layer_norm_epsilon, dtype, name="pre_mlp_layer_norm")(x)
    y = layers.MlpBlock(cfg, name="mlp")(y, deterministic)
    return x + layers.Dropout(cfg.dropout_rate)(y, deterministic)


class DecoderLayer(nn.Module):
  """Causal self-attention, cross-attention, gated MLP. `[B, T, H]` -> `[B, T, H]`."""

  config: T5Config
  relative_embedding: nn.Module

  @nn.compact
  def __call__(self, x: jax.Array, encoded: jax.Array, decoder_mask: jax.Array | None,
               cross_mask: jax.Array | None, deterministic: bool, decode: bool,
               max_decode_length: int | None) -> jax.Array:
    cfg = self.config
    dtype = cfg.jnp_dtype
    length = max_decode_length if decode and max_decode_length else x.shape[-2]
    bias = self.relative_embedding(length, length, False)
    y = layers.LayerNorm(cfg.layer_norm_epsilon, dtype, name="pre_self_attention_layer_norm")(x)
    y = layers.MultiHeadDotProductAttention(cfg, name="self_attention")(
        y, y, decoder_mask, bias, deterministic, decode=decode)
    x = x + layers.Dropout(cfg.dropout_rate)(y, deterministic)
    y = layers.LayerNorm(cfg.layer_norm_epsilon, dtype, name="pre_cross_attention_layer_norm")(x)
    y = layers.MultiHeadDotProductAttention(cfg, name="encoder_decoder_attention")(
        y, encoded, cross_mask, None, deterministic, decode=decode, static_kv=True)
    x = x + layers.Dropout(cfg.dropout_rate)(y, deterministic)
    y = layers.LayerNorm(cfg.layer_norm_epsilon, dtype, name="pre_mlp_layer_norm")(x)
    y = layers.MlpBlock(cfg, name="mlp")(y, deterministic)
    return x + layers.Dropout(cfg.dropout_rate)(y, deterministic)


class Encoder(nn.Module):
  """Token (and optional prefix) embeddings -> `[B, Lp+L, H]` after `encoder_norm`."""

  config: T5Config
  shared_embedding: nn.Module

  @nn.compact
  def __call__(self, encoder_input_tokens: jax.Array, prefix_embeddings: jax.Array | None = None,
               prefix_mask: jax.Array | None = None, deterministic: bool = True) -> jax.Array:
    cfg = self.config
    dtype = cfg.jnp_dtype
    x = self.shared_embedding(encoder_input_tokens.astype(jnp.int32))  # [B, L, H]
    if prefix_embeddings is not None:
      _check_prefix(cfg, encoder_input_tokens, prefix_embeddings, prefix_mask)
      x = jnp.concatenate([jnp.asarray(prefix_embeddings, dtype), x], axis=1)
    valid = encoder_mask(encoder_input_tokens, prefix_mask,
                         0 if prefix_embeddings is None else prefix_embeddings.shape[1])
    mask = layers.make_attention_mask(valid, valid, dtype)  # [B, 1, S, S]
    rel_emb = layers.RelativePositionBiases(cfg.relpos_num_buckets, cfg.relpos_max_distance,
                                            cfg.num_heads, dtype, name="relpos_bias")
    x = layers.Dropout(cfg.dropout_rate)(x, deterministic).astype(dtype)
    for i in range(cfg.num_encoder_layers):
      x = EncoderLayer(cfg, rel_emb, name=f"layers_{i}")(x, mask, deterministic)
    x = layers.LayerNorm(cfg.layer_norm_epsilon, dtype, name="encoder_norm")(x)
    return layers.Dropout(cfg.dropout_rate)(x, deterministic)


class Decoder(nn.Module):
  """Decoder stack + output projection: `decoder_input_tokens [B, T]` -> logits `[B, T, V]` f32."""

  config: T5Config
  shared_embedding: nn.Module

  @nn.compact
  def __call__(self, encoded: jax.Array, encoder_valid: jax.Array,
               decoder_input_tokens: jax.Array, decoder_target_tokens: jax.Array | None = None,
               deterministic: bool = True, decode: bool = False,
               max_decode_length: int | None = None) -> jax.Array:
    cfg = self.config
    dtype = cfg.jnp_dtype
    if encoder_valid.shape != encoded.shape[:2]:
      raise ValueError(f"encoder_mask shape {encoder_valid.shape} does not match encoded "
                       f"{encoded.shape[:2]} ([B, Lp+L])")
    if decode and not max_decode_length:
      raise ValueError("Decoder: decode=True needs max_decode_length (the KV cache length)")
    if decode:
      # One position at a time: causality comes from the KV cache; no target padding known.
      decoder_mask = None
      query_valid = jnp.ones(decoder_input_tokens.shape, jnp.int32)
    else:
      length = decoder_input_tokens.shape[1]
      decoder_mask = layers.make_causal_mask(length, dtype)
      if decoder_target_tokens is not None:
        decoder_mask = decoder_mask * layers.make_attention_mask(
            decoder_target_tokens, decoder_target_tokens, dtype)
        query_valid = decoder_target_tokens > 0
      else:
        query_valid = jnp.ones(decoder_input_tokens.shape, jnp.int32)
    cross_mask = layers.make_attention_mask(query_valid, encoder_valid, dtype)

    rel_emb = layers.RelativePositionBiases(cfg.relpos_num_buckets, cfg.relpos_max_distance,
                                            cfg.num_heads, dtype, name="relpos_bias")
    y = self.shared_embedding(decoder_input_tokens.astype(jnp.int32))
    y = layers.Dropout(cfg.dropout_rate)(y, deterministic).astype(dtype)
    for i in range(cfg.num_decoder_layers):
      y = DecoderLayer(cfg, rel_emb, name=f"layers_{i}")(
          y, encoded, decoder_mask, cross_mask, deterministic, decode, max_decode_length)
    y = layers.LayerNorm(cfg.layer_norm_epsilon, dtype, name="decoder_norm")(y)
    y = layers.Dropout(cfg.dropout_rate)(y, deterministic)
    if cfg.logits_via_embedding:
      logits = self.shared_embedding.attend(y) / jnp.sqrt(jnp.asarray(y.shape[-1], dtype))
      logits = logits.astype(jnp.float32)
    else:
      logits = DenseGeneral(cfg.vocab_size, kernel_axes=("embed", "vocab"), dtype=jnp.float32,
                            name="logits_dense")(y)
    return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))


def _check_prefix(cfg: T5Config, tokens: jax.Array, prefix: jax.Array,
                  prefix_mask: jax.Array | None) -> None:
  if prefix.ndim != 3 or prefix.shape[-1] != cfg.emb_dim:
    raise ValueError(f"prefix_embeddings must be [B, Lp, emb_dim={cfg.emb_dim}], "
                     f"got shape {prefix.shape}")
  if prefix.shape[0] != tokens.shape[0]:
    raise ValueError(f"prefix_embeddings batch {prefix.shape[0]} != encoder_input_tokens batch "
                     f"{tokens.shape[0]}")
  if prefix_mask is not None and prefix_mask.shape != prefix.shape[:2]:
    raise ValueError(f"prefix_mask shape {prefix_mask.shape} != prefix_embeddings "
                     f"{prefix.shape[:2]} ([B, Lp])")


class Transformer(nn.Module):
  """T5X-compatible T5 encoder-decoder. See the module docstring for the param tree."""

  config: T5Config

  def setup(self):
    cfg = self.config
    self.token_embedder = layers.Embed(cfg.vocab_size, cfg.emb_dim, cfg.jnp_dtype)
    self.encoder = Encoder(cfg, self.token_embedder)
    self.decoder = Decoder(cfg, self.token_embedder)

  def encode(self, encoder_input_tokens: jax.Array, prefix_embeddings: jax.Array | None = None,
             prefix_mask: jax.Array | None = None, enable_dropout: bool = False) -> jax.Array:
    """`encoder_input_tokens [B, L]`, optional `prefix_embeddings [B, Lp, H]` placed before the
    token embeddings with `prefix_mask [B, Lp]` (default all ones) -> `[B, Lp+L, H]`."""
    return self.encoder(encoder_input_tokens, prefix_embeddings, prefix_mask,
                        deterministic=not enable_dropout)

  def decode(self, encoded: jax.Array, encoder_mask: jax.Array, decoder_input_tokens: jax.Array,
             decoder_target_tokens: jax.Array | None = None, enable_dropout: bool = False,
             decode: bool = False, max_decode_length: int | None = None) -> jax.Array:
    """`encoded [B, S, H]`, `encoder_mask [B, S]`, `decoder_input_tokens [B, T]` -> `[B, T, V]`.

    Training/scoring (`decode=False`): causal self-attention masked by
    `decoder_target_tokens > 0` on both sides (T5X); cross-attention rows of pad targets are
    masked too. Incremental (`decode=True`): `decoder_input_tokens [B, 1]`, KV cache in the
    'cache' collection (create it by calling once with `[B, max_decode_length]` inputs under
    `mutable=['cache']`, see `decoding.init_cache`).
    """
    return self.decoder(encoded, encoder_mask, decoder_input_tokens, decoder_target_tokens,
                        deterministic=not enable_dropout, decode=decode,
                        max_decode_length=max_decode_length)

  def __call__(self, encoder_input_tokens: jax.Array, decoder_input_tokens: jax.Array,
               decoder_target_tokens: jax.Array | None = None, enable_dropout: bool = False,
               prefix_embeddings: jax.Array | None = None, prefix_mask: jax.Array | None = None,
               decode: bool = False, max_decode_length: int | None = None) -> jax.Array:
    """Encode then decode: logits `[B, T, V]` float32."""
    encoded = self.encode(encoder_input_tokens, prefix_embeddings, prefix_mask, enable_dropout)
    mask = encoder_mask(encoder_input_tokens, prefix_mask,
                        0 if prefix_embeddings is None else prefix_embeddings.shape[1])
    return self.decode(encoded, mask, decoder_input_tokens, decoder_target_tokens,
                       enable_dropout, decode, max_decode_length)


def param_count(params: Any) -> int:
  """Number of scalars in a (possibly boxed) param tree."""
  return sum(int(x.size) for x in jax.tree_util.tree_leaves(nn.meta.unbox(params)))
