"""The `Trainer`: a jitted, sharded train step and batched evaluation (validation F1), plus the
materialized `SplitData` it reads. The loop around it (validation schedule, early stopping,
checkpoints, resume, SIGTERM saves, final test evaluation) is `persoma.train.loop.fit`.

The model is anything with T5X's `BaseModel` interface:
  `get_initial_variables(rng, input_shapes, input_types) -> {'params': ...}` (params may be
  boxed with logical axis names), `loss_fn(params, batch, dropout_rng) -> (loss, aux)`,
  `predict_batch_with_aux(params, batch, rng=None) -> (tokens [B, T], aux)`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from persoma import atomic_io
from persoma import errors
from persoma.train import checkpointing as ckpt_lib
from persoma.train import data as data_lib
from persoma.train import evaluation
from persoma.train import optim
from persoma.train import partitioning

# `loss_fn` aux metrics logged (averaged over each log interval) as `train/<name>`, as T5X does.
LOGGED_AUX_METRICS = ("cross_ent_loss", "z_loss", "accuracy", "item_loss", "probe_loss")

# Model-batch features that go to devices (DESIGN.md "Model batch").
MODEL_FEATURES = ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
                  "decoder_loss_weights", "history_embeddings", "history_mask",
                  "history_genres", "history_stars")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
  """Attributes:
    train_steps: total optimizer steps.
    batch_size: global batch size (paper: 32).
    eval_every_steps: validation interval (0 = only at the end).
    eval_batch_size: global batch size for decoding.
    early_stopping_patience: stop after this many validations without improvement
      (None = never stop early).
    max_eval_examples: cap validation examples decoded during training (None = all).
    log_every_steps: log line / TensorBoard interval.
    seed: parameter-init, dropout and data-order seed.
  """

  train_steps: int = 1000
  batch_size: int = 32
  eval_every_steps: int = 200
  eval_batch_size: int = 32
  early_stopping_patience: int | None = 5
  max_eval_examples: int | None = None
  log_every_steps: int = 20
  seed: int = 0

  def __post_init__(self):
    if self.train_steps < 1:
      raise errors.ConfigError(
          f"TrainerConfig.train_steps={self.train_steps} (gin macro TRAIN_STEPS) must be >= 1")
    if self.batch_size < 1 or self.eval_batch_size < 1:
      raise errors.ConfigError(
          f"TrainerConfig batch sizes must be >= 1: batch_size={self.batch_size} (gin macro "
          f"BATCH_SIZE), eval_batch_size={self.eval_batch_size} (EVAL_BATCH_SIZE)")


def device_features(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in arrays.items() if k in MODEL_FEATURES}


def fmt_secs(s: float) -> str:
  if not math.isfinite(s):
    return "?"
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Trainer:
  """Owns the sharded train state of one run.

  Args:
    model: T5X-interface model (see module doc).
    partitioner: mesh + logical rules.
    optimizer_config: optax settings.
    config: loop settings.
    model_dir: output directory (checkpoints, TensorBoard events, eval JSON).
    example_batch: one host batch (`{feature: [B, ...]}`) to size the model.
    training_mode: 'frozen' | 'lora' | 'full' (`persoma.models.training_modes`; None: all
      params train).
    load_initial_params: params -> params (e.g. restore a pretrained T5X checkpoint).
    decode_fn: tokens `[B, T]` -> list of texts (the output vocabulary).
    score_fn: (predicted texts, target texts) -> {'f1','precision','recall'}
      (default: `persoma.train.evaluation.score_texts`).
    inference_only: no optimizer state and no train step (evaluation / inference).
  """

  def __init__(self, model, partitioner: partitioning.Partitioner,
               optimizer_config: optim.OptimizerConfig, config: TrainerConfig,
               model_dir: str, example_batch: Mapping[str, np.ndarray], *,
               training_mode: str | None = None,
               load_initial_params: Callable[[Any], Any] | None = None,
               decode_fn: Callable[[np.ndarray], list[str]] | None = None,
               score_fn: Callable[[Sequence[str], Sequence[str]], Mapping[str, float]]
               | None = None,
               inference_only: bool = False):
    self.model = model
    self.partitioner = partitioner
    self.config = config
    self.model_dir = os.fspath(model_dir)
    self.decode_fn = decode_fn
    self.score_fn = score_fn or evaluation.score_texts
    partitioner.check_batch_size(config.batch_size)
    partitioner.check_batch_size(config.eval_batch_size, "eval_batch_size")
    example = device_features(example_batch)
    shapes = {k: (config.batch_size,) + v.shape[1:] for k, v in example.items()}
    types = {k: v.dtype for k, v in example.items()}
    self.input_shapes, self.input_types = shapes, types

    rng = jax.random.PRNGKey(config.seed)
    init_rng, self.dropout_base = jax.random.split(rng)

    def init_params(r):
      return model.get_initial_variables(r, shapes, types)["params"]

    boxed = jax.eval_shape(init_params, init_rng)
    self.param_shardings = partitioner.shardings_for(boxed)
    abstract_params = nn.unbox(boxed)
    params = jax.jit(lambda r: nn.unbox(init_params(r)),
                     out_shardings=self.param_shardings)(init_rng)
    if load_initial_params is not None:
      params = load_initial_params(params)
      params = jax.device_put(params, self.param_shardings)
    self.training_mode = training_mode
    self.batch_shardings = {k: partitioner.batch_sharding(len(s)) for k, s in shapes.items()}
    self._predict = jax.jit(
        lambda params, batch: model.predict_batch_with_aux(params, batch)[0],
        in_shardings=(self.param_shardings, self.batch_shardings),
        out_shardings=partitioner.replicated)
    self.abstract_params = abstract_params
    if inference_only:
      self.trainable_mask = None
      self.state = {"step": jax.device_put(jnp.zeros((), jnp.int32), partitioner.replicated),
                    "params": params}
      return
    self.trainable_mask = optim.trainable_mask(params, training_mode)
    n_train, n_total = optim.count_params(params, self.trainable_mask)
    logging.info("Parameters: %s trainable of %s total (mode %s)", f"{n_train:,}",
                 f"{n_total:,}", training_mode or "all")
    self.tx = optim.make_optimizer(optimizer_config, config.train_steps, params,
                                   training_mode)
    abstract_opt = jax.eval_shape(self.tx.init, abstract_params)
    opt_shardings = partitioner.opt_state_shardings(abstract_opt, abstract_params,
                                                    self.param_shardings)
    opt_state = jax.jit(self.tx.init, out_shardings=opt_shardings)(params)
    self.state_shardings = {"step": partitioner.replicated, "params": self.param_shardings,
                            "opt_state": opt_shardings}
    self.state = {"step": jax.device_put(jnp.zeros((), jnp.int32), partitioner.replicated),
                  "params": params, "opt_state": opt_state}
    self._train_step = jax.jit(
        self._step_fn,
        in_shardings=(self.state_shardings, self.batch_shardings),
        out_shardings=(self.state_shardings, partitioner.replicated),
        donate_argnums=(0,))

  # ---- steps ---------------------------------------------------------------------------
  def _step_fn(self, state, batch):
    rng = jax.random.fold_in(self.dropout_base, state["step"])

    def loss_of(p):
      return self.model.loss_fn(p, batch, rng)

    (loss, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(state["params"])
    updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
    if self.trainable_mask is None:
      params = optax.apply_updates(state["params"], updates)
    else:  # frozen leaves returned untouched (bit-identical)
      params = jax.tree.map(lambda m, p, u: optax.apply_updates(p, u) if m else p,
                            self.trainable_mask, state["params"], updates)
    metrics = {"loss": loss, "grad_norm": optax.global_norm(grads),
               **{k: aux[k] for k in LOGGED_AUX_METRICS if k in aux}}
    return {"step": state["step"] + 1, "params": params, "opt_state": opt_state}, metrics

  def train_step(self, host_batch: Mapping[str, np.ndarray]) -> dict[str, float]:
    batch = self.partitioner.shard_batch(device_features(host_batch))
    self.state, metrics = self._train_step(self.state, batch)
    return metrics

  @property
  def step(self) -> int:
    return int(jax.device_get(self.state["step"]))

  def abstract_state(self) -> Any:
    return ckpt_lib.abstract_like(self.state)

  def load_params_from(self, path: str) -> tuple[int, str]:
    """Replaces the params with those of a checkpoint (model dir: its best checkpoint; or
    one step dir), sharded like this trainer's; returns `(step, step_dir)`."""
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          self.abstract_params, self.param_shardings)
    params, step, step_dir = ckpt_lib.restore_params_from_path(path, target)
    self.state = dict(self.state, params=params,
                      step=jax.device_put(jnp.asarray(step, jnp.int32),
                                          self.partitioner.replicated))
    return step, step_dir

  def params_numpy(self) -> Any:
    return jax.device_get(self.state["params"])

  # ---- decoding ------------------------------------------------------------------------
  def predict_tokens(self, host_batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """Greedy decodes of a global batch: `[B, T]` int32 (every process gets all rows)."""
    return np.asarray(self._apply(self._predict, device_features(host_batch)))

  def _apply(self, fn: Callable[[Any, Mapping[str, Any]], Any],
             host_batch: Mapping[str, np.ndarray]) -> Any:
    """`fn(params, this process's shard of a global batch)`, fetched to the host."""
    return jax.device_get(fn(self.state["params"],
                             self.partitioner.shard_batch(_local_slice(host_batch))))

  def map_eval_batches(self, arrays: Mapping[str, np.ndarray], split: str,
                       fn: Callable[[Any, Mapping[str, Any]], Any],
                       max_examples: int | None = None, batch_size: int | None = None,
                       progress_every_secs: float = 15.0, what: str = "eval") -> tuple[int, Any]:
    """Runs jitted `fn(params, sharded batch) -> pytree of [B, ...]` over a split in eval
    batches (the last padded, `max_examples` cut first) and logs progress every
    `progress_every_secs`: `(n, pytree of [n, ...] host arrays)`, padding dropped."""
    if max_examples is not None and max_examples < 1:
      raise ValueError(f"max_examples={max_examples} for split {split!r}: use None (every "
                       "example) or a count >= 1")
    arrays = device_features(arrays)
    n = data_lib._num_examples(arrays, f"split {split!r}")
    if n == 0:
      raise ValueError(f"split {split!r} is empty: nothing to evaluate")
    if max_examples is not None and n > max_examples:
      arrays = {k: v[:max_examples] for k, v in arrays.items()}
      n = max_examples
    outs: list[Any] = []
    done = 0
    t0 = last = time.time()
    for batch, real in data_lib.eval_batches(arrays, batch_size or self.config.eval_batch_size,
                                             split):
      outs.append(jax.tree_util.tree_map(lambda x, r=real: np.asarray(x)[:r],
                                         self._apply(fn, batch)))
      done += real
      now = time.time()
      if now - last > progress_every_secs:
        rate = done / (now - t0)
        logging.info("%s %s: %d/%d examples, %.1f ex/s, ETA %s", what, split, done, n, rate,
                     fmt_secs((n - done) / max(rate, 1e-9)))
        last = now
    return n, jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=0), *outs)

  def evaluate(self, arrays: Mapping[str, np.ndarray], split: str,
               target_texts: Sequence[str], max_examples: int | None = None,
               progress_every_secs: float = 15.0) -> dict[str, Any]:
    """Decodes a split and scores it: `{'f1','precision','recall','split','step','users'}`."""
    if self.decode_fn is None:
      raise ValueError("Trainer.evaluate needs decode_fn (the output vocabulary)")
    n, tokens = self.map_eval_batches(arrays, split, self._predict, max_examples,
                                      progress_every_secs=progress_every_secs)
    preds = self.decode_fn(tokens)
    scores = self.score_fn(preds, list(target_texts)[:n])
    out = {"f1": scores["f1"], "precision": scores["precision"],
           "recall": scores["recall"], "split": split, "step": self.step, "users": n}
    out.update({k: scores[k] for k in ("f1_liked", "f1_disliked") if k in scores})
    self.last_predictions = preds
    return out


def write_shared(path: str, text: str) -> None:
  """Atomic text write (tmp file + rename) of a result every process holds, by the lead
  process only: on a multi-host slice MODEL_DIR is shared (gs://)."""
  if jax.process_index() == 0:
    atomic_io.write_text(path, text)


def write_json(path: str, obj: Mapping[str, Any]) -> None:
  """`write_shared` of `obj` as indented, key-sorted JSON."""
  write_shared(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _local_slice(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """This process's contiguous share of a global batch."""
  n, i = jax.process_count(), jax.process_index()
  if n == 1:
    return dict(batch)
  out = {}
  for k, v in batch.items():
    per = v.shape[0] // n
    out[k] = v[i * per:(i + 1) * per]
  return out


@dataclasses.dataclass
class SplitData:
  """A materialized split: features `[E, ...]` plus the target texts `[E]`.

  `history_table` `[V+1, D]` is set when `arrays` hold `history_index` `[E, N, k]` instead of
  `history_embeddings` (train splits); batches gather from it. `user_ids` `[E]`, when known,
  name the user of each example (prediction files).
  """

  arrays: Mapping[str, np.ndarray]
  targets: Sequence[str]
  name: str
  history_table: np.ndarray | None = None
  user_ids: Sequence[int] | None = None

  def rows(self, start: int = 0, stop: int = 1) -> dict[str, np.ndarray]:
    """Device features of examples `[start, stop)`, history embeddings gathered if indexed."""
    out = {k: np.asarray(v)[start:stop] for k, v in self.arrays.items()}
    if self.history_table is not None:
      out["history_embeddings"] = data_lib.gather_rows(self.history_table,
                                                       out.pop("history_index"))
    return device_features(out)
