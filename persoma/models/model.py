"""PersomaModel: T5X's ``EncoderDecoderModel`` interface over ``PersomaNetwork``.

Batch keys (docs/DESIGN.md "Model batch"): ``encoder_input_tokens [B, L]``,
``decoder_input_tokens [B, T]``, ``decoder_target_tokens [B, T]``, ``decoder_loss_weights [B, T]``,
and for the persoma / uem compositions ``history_embeddings [B, N, D]``, ``history_mask [B, N]``.

Semantics follow T5X: ``loss_fn`` is the weighted SUM of token cross-entropy plus
``z_loss * logsumexp(logits)^2`` (divided by ``loss_normalizing_factor`` if set: a number, or
``'NUM_REAL_TARGET_TOKENS'`` = sum of ``decoder_loss_weights``, or ``'NUM_TOTAL_TARGET_TOKENS'`` =
B*T), plus ``item_loss_weight`` times the item-head loss of an adapter that sows item logits
(``GenreStatsAdapter``, or ``MLPAdapter(item_heads=True)``; see ``genre_stats.item_loss``;
needs ``history_genres`` / ``history_stars`` in the batch), plus ``probe_loss_weight`` times the
genre-probe loss of a network with a ``genre_probe`` (``persoma.models.genre_probe``; same
batch keys);
``score_batch`` is the summed weighted log-likelihood (no z-loss); decoding is greedy or
beam search (best-last ordering with ``return_all_decodes``), stopping at EOS, max length =
``decoder_input_tokens.shape[1]``. Everything is jittable (close over the model).

Usage::

  net = PersomaNetwork(T5Config.small(), adapter=get_adapter('perceiver', input_dim=384))
  model = PersomaModel(net)
  params = nn.unbox(model.get_initial_variables(rng, shapes, types)['params'])
  loss, metrics = model.loss_fn(params, batch, dropout_rng)
  tokens, aux = model.predict_batch_with_aux(params, batch)      # aux['scores'] [B]
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from persoma.models import genre_probe
from persoma.models import genre_stats
from persoma.models import training_modes
from persoma.models.persoma_net import PersomaNetwork
from persoma.models.t5 import decoding, losses
from persoma.models.t5.lora import merge_lora

Array = jax.Array
Batch = Mapping[str, Any]
_NORMALIZERS = ("NUM_REAL_TARGET_TOKENS", "NUM_TOTAL_TARGET_TOKENS")
_HISTORY = ("history_embeddings", "history_mask")
_ITEM_TARGETS = ("history_genres", "history_stars")


@dataclasses.dataclass(frozen=True)
class PersomaModel:
  """T5X-style model wrapper (stateless; params are passed to every method)."""
  network: PersomaNetwork
  z_loss: float = losses.DEFAULT_Z_LOSS
  label_smoothing: float = 0.0
  loss_normalizing_factor: Optional[Union[float, str]] = None
  eos_id: int = 1
  # 'greedy' | 'beam' | 'sample' | None (greedy iff num_decodes == 1)
  decode_method: Optional[str] = None
  beam_alpha: float = 0.6
  item_loss_weight: float = 0.0          # > 0: add the adapter's item-head loss
  probe_loss_weight: float = 0.0         # > 0: add the network's genre-probe loss

  def __post_init__(self):
    lnf = self.loss_normalizing_factor
    if isinstance(lnf, str) and lnf not in _NORMALIZERS:
      raise ValueError(f"PersomaModel.loss_normalizing_factor={lnf!r}: use a number or one of "
                       f"{_NORMALIZERS}")
    if self.item_loss_weight < 0:
      raise ValueError(f"PersomaModel.item_loss_weight={self.item_loss_weight} must be >= 0")
    if self.item_loss_weight and not getattr(self.network.adapter, "sows_item_logits", False):
      raise ValueError(f"PersomaModel.item_loss_weight={self.item_loss_weight} needs an adapter "
                       "with item heads to supervise ('genre_stats', or 'mlp' with "
                       f"item_heads=True), got {type(self.network.adapter).__name__}")
    if self.probe_loss_weight < 0:
      raise ValueError(f"PersomaModel.probe_loss_weight={self.probe_loss_weight} must be >= 0")
    if self.probe_loss_weight and self.network.genre_probe is None:
      raise ValueError(f"PersomaModel.probe_loss_weight={self.probe_loss_weight} needs a "
                       "PersomaNetwork with a genre_probe")

  @property
  def module(self) -> PersomaNetwork:
    """The flax module (T5X name)."""
    return self.network

  @property
  def uses_history(self) -> bool:
    return self.network.composition != "text"

  # ---- helpers ------------------------------------------------------------------------------
  def _history(self, batch: Batch) -> tuple[Optional[Array], Optional[Array]]:
    if not self.uses_history:
      return None, None
    missing = [k for k in _HISTORY if k not in batch]
    if missing:
      raise ValueError(f"batch lacks {missing} needed by composition "
                       f"{self.network.composition!r} (keys: {sorted(batch)})")
    return jnp.asarray(batch["history_embeddings"]), jnp.asarray(batch["history_mask"])

  def _logits(self, params: Any, batch: Batch, dropout_rng: Optional[Array],
              intermediates: bool = False):
    """Logits ``[B, T, V]`` (and the ``intermediates`` collection if asked)."""
    emb, mask = self._history(batch)
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
    out = self.network.apply(
        {"params": nn.unbox(params)}, jnp.asarray(batch["encoder_input_tokens"]),
        jnp.asarray(batch["decoder_input_tokens"]), jnp.asarray(batch["decoder_target_tokens"]),
        emb, mask, enable_dropout=dropout_rng is not None, rngs=rngs,
        mutable=["intermediates"] if intermediates else False)
    return (out[0], out[1].get("intermediates", {})) if intermediates else out

  @staticmethod
  def _check_item_targets(batch: Batch, field: str, weight: float) -> None:
    missing = [k for k in _ITEM_TARGETS if k not in batch]
    if missing:
      raise ValueError(f"PersomaModel.{field}={weight} but the batch lacks {missing}: set "
                       f"PersomaDataConfig.item_targets = True (keys: {sorted(batch)})")

  def _item_loss(self, batch: Batch, intermediates: Mapping) -> Array:
    self._check_item_targets(batch, "item_loss_weight", self.item_loss_weight)
    found = genre_stats.find_item_logits(intermediates)
    if found is None:
      raise ValueError("PersomaModel.item_loss_weight > 0 but the adapter sowed no item logits")
    return genre_stats.item_loss(*found, jnp.asarray(batch["history_genres"]),
                                 jnp.asarray(batch["history_stars"]),
                                 jnp.asarray(batch["history_mask"]))

  def _probe_loss(self, batch: Batch, intermediates: Mapping) -> Array:
    self._check_item_targets(batch, "probe_loss_weight", self.probe_loss_weight)
    outputs = genre_probe.find_probe_outputs(intermediates)
    if outputs is None:
      raise ValueError("PersomaModel.probe_loss_weight > 0 but the network sowed no probe outputs")
    targets = genre_probe.probe_targets(
        jnp.asarray(batch["history_genres"]), jnp.asarray(batch["history_stars"]),
        jnp.asarray(batch["history_mask"]), self.network.genre_probe.rule,
        self.network.genre_probe.whole_rule)
    return genre_probe.probe_loss(outputs, targets)

  def _normalizer(self, batch: Batch) -> Optional[Array]:
    lnf = self.loss_normalizing_factor
    if lnf == "NUM_REAL_TARGET_TOKENS":
      return jnp.sum(jnp.asarray(self._weights(batch), jnp.float32))
    if lnf == "NUM_TOTAL_TARGET_TOKENS":
      return jnp.asarray(jnp.size(batch["decoder_target_tokens"]), jnp.float32)
    return lnf

  @staticmethod
  def _weights(batch: Batch) -> Array:
    if "decoder_loss_weights" in batch:
      return jnp.asarray(batch["decoder_loss_weights"], jnp.float32)
    return (jnp.asarray(batch["decoder_target_tokens"]) > 0).astype(jnp.float32)

  # ---- T5X interface ------------------------------------------------------------------------
  def get_initial_variables(self, rng: Array, input_shapes: Mapping[str, tuple[int, ...]],
                            input_types: Optional[Mapping[str, Any]] = None) -> dict:
    """``network.init`` on zero inputs of ``input_shapes``; params are boxed with logical axes."""
    types = dict(input_types or {})
    for key in ("encoder_input_tokens", "decoder_input_tokens") + (
        _HISTORY if self.uses_history else ()):
      if key not in input_shapes:
        raise ValueError(f"get_initial_variables: input_shapes lacks {key!r} "
                         f"(have {sorted(input_shapes)})")

    def zeros(key, default):
      return jnp.zeros(input_shapes[key], types.get(key, default))

    enc = zeros("encoder_input_tokens", jnp.int32)
    dec = zeros("decoder_input_tokens", jnp.int32)
    emb = mask = None
    if self.uses_history:
      emb = zeros("history_embeddings", jnp.float32)
      mask = jnp.ones(input_shapes["history_mask"], jnp.int32)
    params_rng, dropout_rng = jax.random.split(rng)
    return self.network.init({"params": params_rng, "dropout": dropout_rng}, enc, dec, dec,
                             emb, mask, enable_dropout=False)

  def loss_fn(self, params: Any, batch: Batch, dropout_rng: Optional[Array]
              ) -> tuple[Array, dict[str, Array]]:
    """(loss, metrics): T5X loss (dropout on iff ``dropout_rng`` is given)."""
    if self.item_loss_weight or self.probe_loss_weight:
      logits, intermediates = self._logits(params, batch, dropout_rng, intermediates=True)
    else:
      logits = self._logits(params, batch, dropout_rng)
    targets = jnp.asarray(batch["decoder_target_tokens"])
    weights = self._weights(batch)
    out = losses.compute_weighted_cross_entropy(
        logits, targets, weights, self.label_smoothing, self.z_loss, self._normalizer(batch))
    correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32) * weights
    metrics = {"loss": out.loss, "cross_ent_loss": out.cross_ent_loss, "z_loss": out.z_loss,
               "num_tokens": out.weight_sum,
               "accuracy": jnp.sum(correct) / jnp.maximum(out.weight_sum, 1.0)}
    loss = out.loss
    if self.item_loss_weight:
      item = self._item_loss(batch, intermediates)
      metrics["item_loss"] = item
      loss = loss + self.item_loss_weight * item
    if self.probe_loss_weight:
      probe = self._probe_loss(batch, intermediates)
      metrics["probe_loss"] = probe
      loss = loss + self.probe_loss_weight * probe
    metrics["loss"] = loss
    return loss, metrics

  def score_batch(self, params: Any, batch: Batch, return_intermediates: bool = False):
    """Sum of weighted target log-likelihoods ``[B]`` (+ ``{'token_scores': [B, T]}``)."""
    logits = self._logits(params, batch, None)
    scores = losses.token_scores(logits, jnp.asarray(batch["decoder_target_tokens"]),
                                 self._weights(batch))
    total = jnp.sum(scores, axis=-1)
    return (total, {"token_scores": scores}) if return_intermediates else total

  def predict_batch_with_aux(self, params: Any, batch: Batch, rng: Optional[Array] = None,
                             decoder_params: Optional[Mapping[str, Any]] = None,
                             return_all_decodes: bool = False, num_decodes: int = 1,
                             prompt_with_targets: bool = False) -> tuple[Array, dict]:
    """Decodes ``[B, T]`` (or ``[B, K, T]`` with ``return_all_decodes``) and ``{'scores'}``.

    ``decoder_params`` may set ``decode_method`` ('greedy' | 'beam' | 'sample'), ``alpha``,
    ``max_decode_length``, ``eos_id``, and for sampling ``temperature`` and ``topk``. ``rng``
    seeds sampling (``PRNGKey(0)`` if None); greedy and beam search ignore it.
    """
    if prompt_with_targets:
      raise NotImplementedError("prompt_with_targets is not supported")
    dp = dict(decoder_params or {})
    unknown = set(dp) - {"decode_method", "alpha", "max_decode_length", "eos_id", "temperature",
                         "topk"}
    if unknown:
      raise ValueError(f"predict_batch_with_aux: unknown decoder_params {sorted(unknown)}")
    variables = {"params": nn.unbox(params)}
    emb, mask = self._history(batch)
    encoded, enc_mask = self.network.apply(
        variables, jnp.asarray(batch["encoder_input_tokens"]), emb, mask,
        method=PersomaNetwork.encode_with_mask)
    max_len = dp.get("max_decode_length", jnp.shape(batch["decoder_input_tokens"])[1])
    tokens, scores = decoding.predict(
        self.network, variables, encoded, enc_mask, int(max_len), num_decodes=num_decodes,
        decode_method=dp.get("decode_method", self.decode_method),
        alpha=dp.get("alpha", self.beam_alpha), eos_id=dp.get("eos_id", self.eos_id),
        return_all_decodes=return_all_decodes, rng=rng,
        temperature=float(dp.get("temperature", 1.0)), topk=int(dp.get("topk", 0)))
    return tokens, {"scores": scores}

  def predict_batch(self, params: Any, batch: Batch, rng: Optional[Array] = None,
                    **kwargs) -> Array:
    """Decoded token ids only (see ``predict_batch_with_aux``)."""
    return self.predict_batch_with_aux(params, batch, rng, **kwargs)[0]

  # ---- training modes / LoRA ----------------------------------------------------------------
  def trainable_mask(self, params: Any, mode: str) -> Any:
    """Bool tree: which params train in ``mode`` ('frozen' | 'lora' | 'full')."""
    return training_modes.trainable_mask(nn.unbox(params), mode)

  def merge_lora(self, params: Any) -> tuple["PersomaModel", dict]:
    """LoRA folded into the kernels: ``(model without LoRA, merged params)`` for inference."""
    cfg = self.network.t5_config
    merged = merge_lora(nn.unbox(params), cfg)
    net = self.network.clone(t5_config=cfg.replace(lora_rank=0))
    return dataclasses.replace(self, network=net), merged
