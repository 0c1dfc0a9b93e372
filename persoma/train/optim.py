"""optax optimizer + learning-rate schedule from gin, with clipping and a trainable mask.

Paper defaults (PERSOMA): learning rate 1e-3 (batch 32 is set in the run gin files).
The training mode (`persoma.models.training_modes`: frozen / lora / full) routes frozen
parameters to `optax.set_to_zero()`, so they get no optimizer state and never change.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import optax

from persoma import errors

SCHEDULES = ("constant", "warmup_constant", "warmup_cosine", "warmup_linear", "rsqrt")
OPTIMIZERS = ("adam", "adamw", "adafactor", "sgd")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Optimizer settings (gin-bound in `gin/runs/train.gin`).

  Attributes:
    name: one of `OPTIMIZERS`.
    learning_rate: peak learning rate.
    schedule: one of `SCHEDULES`; the decaying ones run over the run's total steps.
    warmup_steps: linear warm-up steps from 0 (ignored by `constant`).
    end_learning_rate_fraction: final lr / peak for `warmup_cosine` / `warmup_linear`.
    weight_decay: decoupled weight decay (`adamw` only).
    clip_norm: global-norm gradient clipping threshold; None or <= 0 disables it.
    b1, b2, eps: Adam moments.
  """

  name: str = "adamw"
  learning_rate: float = 1e-3
  schedule: str = "constant"
  warmup_steps: int = 0
  end_learning_rate_fraction: float = 0.0
  weight_decay: float = 0.0
  clip_norm: float | None = 1.0
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8

  def __post_init__(self):
    if self.name not in OPTIMIZERS:
      raise errors.ConfigError(
          f"OptimizerConfig.name={self.name!r}: expected one of {OPTIMIZERS}")
    if self.schedule not in SCHEDULES:
      raise errors.ConfigError(f"OptimizerConfig.schedule={self.schedule!r} (gin macro "
                               f"SCHEDULE): expected one of {SCHEDULES}")
    if not self.learning_rate > 0:
      raise errors.ConfigError(f"OptimizerConfig.learning_rate={self.learning_rate} (gin "
                               "macro LEARNING_RATE) must be > 0")
    if self.warmup_steps < 0:
      raise errors.ConfigError(f"OptimizerConfig.warmup_steps={self.warmup_steps} (gin macro "
                               "WARMUP_STEPS) must be >= 0")


def make_schedule(cfg: OptimizerConfig, total_steps: int) -> optax.Schedule:
  """Learning rate as a function of the step."""
  lr, warm = cfg.learning_rate, cfg.warmup_steps
  if cfg.schedule == "constant":
    return optax.constant_schedule(lr)
  if cfg.schedule == "warmup_constant":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, max(warm, 1)), optax.constant_schedule(lr)], [warm])
  if cfg.schedule == "rsqrt":
    w = max(warm, 1)
    return lambda step: lr * jax.numpy.minimum(
        (step + 1) / w, jax.numpy.sqrt(w / jax.numpy.maximum(step + 1, w)))
  decay = max(total_steps - warm, 1)
  end = lr * cfg.end_learning_rate_fraction
  if cfg.schedule == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, max(warm, 0), warm + decay, end)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, max(warm, 1)),
       optax.linear_schedule(lr, end, decay)], [warm])


def _base(cfg: OptimizerConfig, schedule: optax.Schedule) -> optax.GradientTransformation:
  if cfg.name == "adam":
    return optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
  if cfg.name == "adamw":
    return optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                       weight_decay=cfg.weight_decay)
  if cfg.name == "adafactor":
    return optax.adafactor(schedule)
  return optax.sgd(schedule)


def make_base_optimizer(cfg: OptimizerConfig, total_steps: int) -> optax.GradientTransformation:
  """Global-norm clipping -> optimizer with the configured schedule (no mask)."""
  parts = []
  if cfg.clip_norm is not None and cfg.clip_norm > 0:
    parts.append(optax.clip_by_global_norm(cfg.clip_norm))
  parts.append(_base(cfg, make_schedule(cfg, total_steps)))
  return optax.chain(*parts)


def make_optimizer(cfg: OptimizerConfig, total_steps: int, params: Any = None,
                   mode: str | None = None) -> optax.GradientTransformation:
  """The run's optimizer: `make_base_optimizer` applied only to the params that train in
  `mode` (`persoma.models.training_modes`: frozen / lora / full); frozen params get
  `optax.set_to_zero()` and no optimizer state. `mode=None` trains everything.

  Raises ValueError (from training_modes) for an unknown mode or one training nothing.
  """
  base = make_base_optimizer(cfg, total_steps)
  if mode is None:
    return base
  from persoma.models import training_modes  # pylint: disable=g-import-not-at-top
  return training_modes.make_optimizer(base, params, mode)


def trainable_mask(params: Any, mode: str | None) -> Any | None:
  """Bool tree over params (None when everything trains)."""
  if mode is None:
    return None
  from persoma.models import training_modes  # pylint: disable=g-import-not-at-top
  return training_modes.trainable_mask(params, mode)


def count_params(params: Any, mask: Any | None = None) -> tuple[int, int]:
  """(trainable, total) parameter counts."""
  sizes = jax.tree.map(lambda x: int(x.size), params)
  total = sum(jax.tree.leaves(sizes))
  if mask is None:
    return total, total
  trainable = sum(s for s, m in zip(jax.tree.leaves(sizes), jax.tree.leaves(mask)) if m)
  return trainable, total
