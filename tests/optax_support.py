"""Test helper (not a test file): a few jitted Adam steps on a loss, for the tests that check a
head or module can fit its targets."""

from __future__ import annotations

from typing import Any, Callable

import jax
import optax


def minimize(loss_fn: Callable[[Any], jax.Array], params: Any, learning_rate: float,
             steps: int) -> tuple[Any, float, float]:
  """``steps`` Adam steps on ``loss_fn(params)``: ``(params, first loss, last loss)``."""
  opt = optax.adam(learning_rate)

  @jax.jit
  def step(p, s):
    g = jax.grad(loss_fn)(p)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s

  first, state = float(loss_fn(params)), opt.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params, first, float(loss_fn(params))
