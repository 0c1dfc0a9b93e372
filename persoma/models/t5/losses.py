"""T5X's token cross-entropy with z-loss, weighted sums, and per-token scores.

Semantics follow `t5x.losses.compute_weighted_cross_entropy` and `EncoderDecoderModel.score_batch`:
- per token: `-sum(soft_targets * log_softmax(logits)) + z_loss * logsumexp(logits)^2`
  (minus the label-smoothing normalising constant);
- the loss is the weighted SUM over tokens (not a mean) unless `loss_normalizing_factor` is given;
- `token_scores = log p(target) * weights` (no z-loss); `sequence_scores` sums them.
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

DEFAULT_Z_LOSS = 1e-4


def cross_entropy_with_logits(logits: jax.Array, soft_targets: jax.Array, z_loss: float
                              ) -> tuple[jax.Array, jax.Array]:
  """`logits`, `soft_targets [..., V]` -> (loss incl. z-loss `[...]`, z-loss term `[...]`)."""
  log_z = jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
  log_softmax = logits - log_z
  loss = -jnp.sum(soft_targets * log_softmax, axis=-1)
  z_term = z_loss * jax.lax.square(jnp.squeeze(log_z, axis=-1))
  return loss + z_term, z_term


@flax.struct.dataclass
class WeightedLoss:
  """Sums over weighted tokens (a pytree). `loss` includes the z-loss; `cross_ent_loss = loss - z_loss`."""

  loss: jax.Array
  z_loss: jax.Array
  cross_ent_loss: jax.Array
  weight_sum: jax.Array


def compute_weighted_cross_entropy(logits: jax.Array, targets: jax.Array,
                                   weights: jax.Array | None = None, label_smoothing: float = 0.0,
                                   z_loss: float = DEFAULT_Z_LOSS,
                                   loss_normalizing_factor: float | None = None) -> WeightedLoss:
  """`logits [B, T, V]` float, `targets [B, T]` int, `weights [B, T]` -> `WeightedLoss` scalars."""
  if logits.ndim != targets.ndim + 1:
    raise ValueError(f"logits {logits.shape} must be targets {targets.shape} plus a vocab axis")
  if not 0.0 <= label_smoothing < 1.0:
    raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
  logits = logits.astype(jnp.float32)
  vocab = logits.shape[-1]
  confidence = 1.0 - label_smoothing
  low = (1.0 - confidence) / (vocab - 1)
  normalizing_constant = -(confidence * jnp.log(confidence)
                           + (vocab - 1) * low * jnp.log(low + 1e-20))
  soft = jax.nn.one_hot(targets, vocab, dtype=jnp.float32) * (confidence - low) + low
  token_loss, token_z = cross_entropy_with_logits(logits, soft, z_loss)
  token_loss = token_loss - normalizing_constant
  if weights is None:
    weight_sum = jnp.asarray(targets.size, jnp.float32)
  else:
    weights = jnp.asarray(weights, jnp.float32)
    token_loss, token_z = token_loss * weights, token_z * weights
    weight_sum = jnp.sum(weights)
  loss, z = jnp.sum(token_loss), jnp.sum(token_z)
  if loss_normalizing_factor is not None:
    loss, z = loss / loss_normalizing_factor, z / loss_normalizing_factor
  return WeightedLoss(loss=loss, z_loss=z, cross_ent_loss=loss - z, weight_sum=weight_sum)


def token_scores(logits: jax.Array, targets: jax.Array, weights: jax.Array | None = None
                 ) -> jax.Array:
  """Per-token log-likelihoods `[B, T]` (`log_softmax(logits)[target] * weights`, no z-loss)."""
  logits = logits.astype(jnp.float32)
  soft = jax.nn.one_hot(targets, logits.shape[-1], dtype=jnp.float32)
  scores = -cross_entropy_with_logits(logits, soft, 0.0)[0]
  if weights is not None:
    scores = scores * jnp.asarray(weights, jnp.float32)
  return scores


def sequence_scores(logits: jax.Array, targets: jax.Array, weights: jax.Array | None = None
                    ) -> jax.Array:
  """`[B]` summed weighted log-likelihood of each target sequence (T5X `score_batch`)."""
  return jnp.sum(token_scores(logits, targets, weights), axis=-1)
