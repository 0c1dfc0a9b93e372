"""Greedy and beam search with T5X semantics, over a KV-cached `tokens_to_logits` step function.

Conventions (as `t5x.decoding`): 0 is PAD and the decoder BOS; decoding starts from BOS, and a
generated 0 is NOT a stop token; only `eos_id` ends a row. After EOS a greedy row emits 0s and its
score stops changing; scores are summed `log_softmax` of the chosen tokens up to and including
EOS. Beam search keeps `num_beams` live and finished beams, length-normalises finished ones by
`((5 + length) / 6) ** alpha`, returns beams sorted by ASCENDING score (best last), and falls back
to the live beams (raw log-prob) for rows where nothing finished.

Temperature sampling (as `t5x.decoding.temperature_sample`) draws each token from
`softmax(logits / temperature)`, optionally restricted to the `topk` most likely tokens;
temperature 0 is argmax. Its scores are the model's own log-probabilities of the sampled tokens
(unscaled logits), so they compare with greedy and beam scores.

All loops are `lax.while_loop`s, so everything here runs under `jax.jit`.

Step function contract: `tokens_to_logits(tokens [N, 1] int32, cache) -> (logits [N, V], cache)`
with `N = B` (greedy) or `B * K` (K beams or samples per row). Cache leaves have a leading `N`
axis except scalars (`cache_index`), which are shared. `transformer_step_fns` builds one for any flax module
with a T5X-style `decode(encoded, encoder_mask, decoder_input_tokens, decoder_target_tokens,
enable_dropout, decode, max_decode_length)` method (our `Transformer`, and models wrapping it).
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

NEG_INF = -1.0e7  # T5X's "minus infinity" for beam scores
StepFn = Callable[[jax.Array, Any], tuple[jax.Array, Any]]


def brevity_penalty(alpha: float, length: jax.Array | int) -> jax.Array:
  """GNMT length penalty `((5 + length) / 6) ** alpha`."""
  return jnp.power((5.0 + jnp.asarray(length, jnp.float32)) / 6.0, alpha)


def greedy_search(tokens_to_logits: StepFn, cache: Any, batch_size: int, max_decode_len: int,
                  eos_id: int = 1) -> tuple[jax.Array, jax.Array]:
  """Argmax decoding. Returns `tokens [B, T]` int32 and `scores [B]` float32 (T = max_decode_len).

  Stops early once every row has produced `eos_id`; rows that ended emit 0 afterwards. This is
  `temperature_sample` at temperature 0, as in T5X.
  """
  return temperature_sample(tokens_to_logits, cache, jax.random.PRNGKey(0), batch_size,
                            max_decode_len, temperature=0.0, eos_id=eos_id)


def temperature_sample(tokens_to_logits: StepFn, cache: Any, rng: jax.Array, batch_size: int,
                       max_decode_len: int, temperature: float = 1.0, topk: int = 0,
                       eos_id: int = 1) -> tuple[jax.Array, jax.Array]:
  """Ancestral sampling, one sample per cache row. Returns `tokens [N, T]`, `scores [N]`.

  `batch_size` is N, the number of cache rows (repeat the cache K times per example for K
  samples). Token i of every row is drawn with `jax.random.fold_in(rng, i)`, so the same `rng`
  gives the same samples. `scores` sum the log-softmax of the unscaled logits of the drawn tokens
  up to and including EOS; rows that ended emit 0 afterwards, as in `greedy_search`.
  """
  if max_decode_len <= 0:
    raise ValueError(f"max_decode_len must be positive, got {max_decode_len}")
  if not temperature >= 0.0:  # also rejects NaN
    raise ValueError(f"temperature must be >= 0, got {temperature}")
  if topk < 0:
    raise ValueError(f"topk must be >= 0 (0: no top-k cut), got {topk}")
  seqs = jnp.zeros((batch_size, max_decode_len + 1), jnp.int32)  # position 0 is BOS (0)

  def cond(state):
    i, _, _, ended, _ = state
    return jnp.logical_and(i < max_decode_len, jnp.logical_not(jnp.all(ended)))

  def body(state):
    i, seqs, cache, ended, scores = state
    cur = lax.dynamic_slice_in_dim(seqs, i, 1, axis=1)  # [N, 1]
    logits, cache = tokens_to_logits(cur, cache)
    logits = logits.astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits)
    if temperature == 0.0:
      nxt = jnp.argmax(logits, axis=-1)
    else:
      scaled = logits / temperature
      if topk:
        kth = lax.top_k(scaled, topk)[0][:, -1:]
        scaled = jnp.where(scaled < kth, -jnp.inf, scaled)
      nxt = jax.random.categorical(jax.random.fold_in(rng, i), scaled, axis=-1)
    nxt = nxt.astype(jnp.int32)
    chosen = jnp.take_along_axis(log_probs, nxt[:, None], axis=-1)[:, 0]
    nxt = jnp.where(ended, 0, nxt)
    scores = scores + jnp.where(ended, 0.0, chosen)
    ended = jnp.logical_or(ended, nxt == eos_id)
    seqs = lax.dynamic_update_slice_in_dim(seqs, nxt[:, None], i + 1, axis=1)
    return i + 1, seqs, cache, ended, scores

  init = (jnp.array(0, jnp.int32), seqs, cache, jnp.zeros((batch_size,), bool),
          jnp.zeros((batch_size,), jnp.float32))
  _, seqs, _, _, scores = lax.while_loop(cond, body, init)
  return seqs[:, 1:], scores


def _gather_beams(x: jax.Array, beam_idx: jax.Array) -> jax.Array:
  """`x [B, K, ...]`, `beam_idx [B, K']` -> `[B, K', ...]`."""
  return jnp.take_along_axis(x, beam_idx.reshape(beam_idx.shape + (1,) * (x.ndim - 2)), axis=1)


def _gather_flat_cache(cache: Any, beam_idx: jax.Array, num_beams: int) -> Any:
  """Reorders cache leaves `[B*K, ...]` by `beam_idx [B, K]`; scalar leaves are kept."""
  batch = beam_idx.shape[0]
  flat_idx = (jnp.arange(batch)[:, None] * num_beams + beam_idx).reshape(-1)

  def gather(leaf):
    return leaf if leaf.ndim == 0 else jnp.take(leaf, flat_idx, axis=0)

  return jax.tree_util.tree_map(gather, cache)


def beam_search(tokens_to_logits: StepFn, cache: Any, batch_size: int, max_decode_len: int,
                num_beams: int = 4, alpha: float = 0.6, eos_id: int = 1
                ) -> tuple[jax.Array, jax.Array]:
  """T5X beam search. `cache` leaves must already be `[B * num_beams, ...]` (beam-major within
  each batch row, i.e. `jnp.repeat(x, num_beams, axis=0)`).

  Returns `seqs [B, K, T]` int32 and `scores [B, K]`, sorted ascending (best is `[:, -1]`).
  """
  if num_beams < 1:
    raise ValueError(f"num_beams must be >= 1, got {num_beams}")
  if max_decode_len <= 0:
    raise ValueError(f"max_decode_len must be positive, got {max_decode_len}")
  b, k, t = batch_size, num_beams, max_decode_len
  live_logprobs = jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1), jnp.float32), (b, 1))
  state = dict(
      i=jnp.array(0, jnp.int32),
      live_logprobs=live_logprobs,
      live_seqs=jnp.zeros((b, k, t + 1), jnp.int32),
      finished_scores=jnp.full((b, k), NEG_INF, jnp.float32),
      finished_seqs=jnp.zeros((b, k, t + 1), jnp.int32),
      finished_flags=jnp.zeros((b, k), bool),
      cache=cache)
  best_possible_penalty = brevity_penalty(alpha, t + 1)  # T5X counts the BOS slot

  def cond(s):
    best_live = s["live_logprobs"][:, -1:] / best_possible_penalty  # [B, 1] (ascending order)
    worst_finished = jnp.min(s["finished_scores"], axis=1, keepdims=True)
    worst_finished = jnp.where(jnp.all(s["finished_flags"], axis=1, keepdims=True),
                               worst_finished, NEG_INF)
    done = jnp.all(worst_finished > best_live)
    return jnp.logical_and(s["i"] < t, jnp.logical_not(done))

  def body(s):
    i = s["i"]
    cur = lax.dynamic_slice_in_dim(s["live_seqs"], i, 1, axis=2).reshape(b * k, 1)
    logits, new_cache = tokens_to_logits(cur, s["cache"])
    vocab = logits.shape[-1]
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(b, k, vocab)
    log_probs = log_probs + s["live_logprobs"][:, :, None]
    # Best 2K continuations over all (beam, token) pairs: enough to keep K live ones even if
    # up to K of them end with EOS.
    top_lp, top_idx = lax.top_k(log_probs.reshape(b, k * vocab), 2 * k)
    top_beam = top_idx // vocab
    top_tok = (top_idx % vocab).astype(jnp.int32)
    top_seqs = _gather_beams(s["live_seqs"], top_beam)
    top_seqs = lax.dynamic_update_slice_in_dim(top_seqs, top_tok[:, :, None], i + 1, axis=2)
    newly_finished = top_tok == eos_id

    # Beams are kept in ascending score order (T5X's convention), hence the flips.
    alive_lp = top_lp + newly_finished * NEG_INF
    alive_pos = jnp.flip(lax.top_k(alive_lp, k)[1], axis=1)
    alive_lp = _gather_beams(alive_lp, alive_pos)
    alive_seqs = _gather_beams(top_seqs, alive_pos)
    alive_cache = _gather_flat_cache(new_cache, _gather_beams(top_beam, alive_pos), k)

    new_scores = top_lp / brevity_penalty(alpha, i + 1) + (~newly_finished) * NEG_INF
    all_seqs = jnp.concatenate([s["finished_seqs"], top_seqs], axis=1)
    all_scores = jnp.concatenate([s["finished_scores"], new_scores], axis=1)
    all_flags = jnp.concatenate([s["finished_flags"], newly_finished], axis=1)
    fin_pos = jnp.flip(lax.top_k(all_scores, k)[1], axis=1)
    return dict(i=i + 1, live_logprobs=alive_lp, live_seqs=alive_seqs,
                finished_scores=_gather_beams(all_scores, fin_pos),
                finished_seqs=_gather_beams(all_seqs, fin_pos),
                finished_flags=_gather_beams(all_flags, fin_pos), cache=alive_cache)

  s = lax.while_loop(cond, body, state)
  any_finished = jnp.any(s["finished_flags"], axis=1)
  seqs = jnp.where(any_finished[:, None, None], s["finished_seqs"], s["live_seqs"])
  scores = jnp.where(any_finished[:, None], s["finished_scores"], s["live_logprobs"])
  return seqs[:, :, 1:], scores


def transformer_step_fns(module: nn.Module, variables: dict, encoded: jax.Array,
                         encoder_mask: jax.Array, max_decode_length: int, repeats: int = 1,
                         method: str = "decode") -> tuple[StepFn, Any]:
  """Builds `(tokens_to_logits, initial_cache)` for `module.<method>` with a KV cache.

  `variables` holds 'params' (and any other non-cache collections); `encoded [B, S, H]` and
  `encoder_mask [B, S]` are repeated `repeats` times per row (for beams). The initial cache
  comes from one full-length decoder pass: zeroed self-attention caches plus each layer's
  cross-attention key/value, projected from `encoded` once rather than at every step.
  """
  if encoded.shape[:2] != encoder_mask.shape:
    raise ValueError(f"encoder_mask {encoder_mask.shape} does not match encoded "
                     f"{encoded.shape[:2]}")
  if repeats > 1:
    encoded = jnp.repeat(encoded, repeats, axis=0)
    encoder_mask = jnp.repeat(encoder_mask, repeats, axis=0)
  n = encoded.shape[0]
  variables = {k: v for k, v in variables.items() if k != "cache"}

  def run(cache, tokens):
    mutable_vars = dict(variables) if cache is None else {**variables, "cache": cache}
    logits, new_vars = module.apply(mutable_vars, encoded, encoder_mask, tokens, tokens,
                                    enable_dropout=False, decode=True,
                                    max_decode_length=max_decode_length, method=method,
                                    mutable=["cache"])
    return logits, new_vars["cache"]

  # One full-length pass creates the self-attention caches (zeros, index 0) and projects the
  # encoder output into each layer's cross-attention key/value cache once.
  cache = run(None, jnp.zeros((n, max_decode_length), jnp.int32))[1]

  def tokens_to_logits(tokens, cache):
    logits, cache = run(cache, tokens)
    return logits[:, -1, :], cache

  return tokens_to_logits, cache


def predict(module: nn.Module, variables: dict, encoded: jax.Array, encoder_mask: jax.Array,
            max_decode_length: int, *, num_decodes: int = 1, decode_method: str | None = None,
            alpha: float = 0.6, eos_id: int = 1, return_all_decodes: bool = False,
            method: str = "decode", rng: jax.Array | None = None, temperature: float = 1.0,
            topk: int = 0) -> tuple[jax.Array, jax.Array]:
  """Decodes from an encoder output. `decode_method`: 'greedy' (default for one decode), 'beam'
  or 'sample' (K = `num_decodes` independent samples per row from `rng`, PRNGKey(0) if None,
  at `temperature`, top-`topk` tokens if topk > 0).

  Returns `(tokens [B, T], scores [B])`, or with `return_all_decodes` and beam search or
  sampling `(tokens [B, K, T], scores [B, K])` sorted by ascending score (best last). Jittable
  (close over `module`, pass arrays as arguments).
  """
  decode_method = decode_method or ("greedy" if num_decodes == 1 else "beam")
  batch = encoded.shape[0]
  if decode_method == "greedy":
    if num_decodes != 1:
      raise ValueError("greedy decoding gives one decode per row; use decode_method='beam'")
    step, cache = transformer_step_fns(module, variables, encoded, encoder_mask,
                                       max_decode_length, 1, method)
    tokens, scores = greedy_search(step, cache, batch, max_decode_length, eos_id)
    return (tokens[:, None], scores[:, None]) if return_all_decodes else (tokens, scores)
  if decode_method == "beam":
    step, cache = transformer_step_fns(module, variables, encoded, encoder_mask,
                                       max_decode_length, num_decodes, method)
    tokens, scores = beam_search(step, cache, batch, max_decode_length, num_decodes, alpha,
                                 eos_id)
    return (tokens, scores) if return_all_decodes else (tokens[:, -1], scores[:, -1])
  if decode_method == "sample":
    if num_decodes < 1:
      raise ValueError(f"num_decodes must be >= 1, got {num_decodes}")
    step, cache = transformer_step_fns(module, variables, encoded, encoder_mask,
                                       max_decode_length, num_decodes, method)
    rng = jax.random.PRNGKey(0) if rng is None else rng
    tokens, scores = temperature_sample(step, cache, rng, batch * num_decodes, max_decode_length,
                                        temperature, topk, eos_id)
    tokens = tokens.reshape((batch, num_decodes, -1))
    order = jnp.argsort(scores.reshape((batch, num_decodes)), axis=1)  # ascending, best last
    tokens = _gather_beams(tokens, order)
    scores = jnp.take_along_axis(scores.reshape((batch, num_decodes)), order, axis=1)
    return (tokens, scores) if return_all_decodes else (tokens[:, -1], scores[:, -1])
  raise ValueError(f"unknown decode_method {decode_method!r}; use 'greedy', 'beam' or 'sample'")
