"""Optimizer from gin settings: schedules, clipping, training-mode masks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from persoma.train import optim


def test_paper_defaults():
  cfg = optim.OptimizerConfig()
  assert cfg.learning_rate == 1e-3 and cfg.name == "adamw"


@pytest.mark.parametrize("bad", [dict(name="lion"), dict(schedule="cyclic"),
                                 dict(learning_rate=0.0), dict(warmup_steps=-1)])
def test_bad_settings_name_the_field(bad):
  with pytest.raises(ValueError, match=next(iter(bad))):
    optim.OptimizerConfig(**bad)


def test_schedules():
  s = optim.make_schedule(optim.OptimizerConfig(schedule="warmup_cosine", warmup_steps=10,
                                                learning_rate=1.0), 110)
  assert float(s(0)) == pytest.approx(0.0)
  assert float(s(10)) == pytest.approx(1.0)
  assert float(s(60)) == pytest.approx(0.5, abs=1e-3)
  assert float(s(110)) == pytest.approx(0.0, abs=1e-6)
  c = optim.make_schedule(optim.OptimizerConfig(schedule="warmup_constant", warmup_steps=4,
                                                learning_rate=2.0), 100)
  assert float(c(2)) == pytest.approx(1.0) and float(c(50)) == pytest.approx(2.0)
  lin = optim.make_schedule(optim.OptimizerConfig(schedule="warmup_linear", warmup_steps=0,
                                                  learning_rate=1.0), 10)
  assert float(lin(5)) == pytest.approx(0.5)


def test_clipping_bounds_the_update():
  params = {"w": jnp.zeros(4)}
  grads = {"w": jnp.full(4, 1e6)}
  for clip, expect_small in ((0.5, True), (None, False)):
    tx = optim.make_base_optimizer(
        optim.OptimizerConfig(name="sgd", learning_rate=1.0, clip_norm=clip), 10)
    upd, _ = tx.update(grads, tx.init(params), params)
    norm = float(optax.global_norm(upd))
    assert (norm <= 0.5 + 1e-5) == expect_small, norm


def _params():
  return {"encoder": {"layers_0": {"attention": {"query": {
      "kernel": jnp.ones((4, 4)), "lora_a": jnp.ones((4, 2)), "lora_b": jnp.zeros((2, 4))}}}},
          "adapter": {"kernel": jnp.ones((3, 4))}, "task_prompt": {"prompt": jnp.ones((2, 4))}}


@pytest.mark.parametrize("mode,trained", [
    ("frozen", {"adapter/kernel", "task_prompt/prompt"}),
    ("lora", {"adapter/kernel", "task_prompt/prompt",
              "encoder/layers_0/attention/query/lora_a",
              "encoder/layers_0/attention/query/lora_b"}),
    ("full", None)])
def test_mode_mask_trains_exactly_the_intended_params(mode, trained):
  params = _params()
  cfg = optim.OptimizerConfig(learning_rate=0.1)
  tx = optim.make_optimizer(cfg, 10, params, mode)
  grads = jax.tree.map(jnp.ones_like, params)
  state = tx.init(params)
  upd, _ = tx.update(grads, state, params)
  new = optax.apply_updates(params, upd)
  flat_old = {"/".join(str(k.key) for k in p): v
              for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  flat_new = {"/".join(str(k.key) for k in p): v
              for p, v in jax.tree_util.tree_flatten_with_path(new)[0]}
  changed = {k for k in flat_old if not np.array_equal(flat_old[k], flat_new[k])}
  assert changed == (trained if trained is not None else set(flat_old))
  # Frozen params hold no optimizer state.
  n_state = sum(x.size for x in jax.tree.leaves(state) if hasattr(x, "size") and x.ndim)
  n_trained = sum(flat_old[k].size for k in (trained or flat_old))
  assert n_state == 2 * n_trained  # Adam mu + nu for trained params only
  t, total = optim.count_params(params, optim.trainable_mask(params, mode))
  assert t == n_trained and total == sum(v.size for v in flat_old.values())


def test_unknown_mode_is_an_error():
  with pytest.raises(ValueError, match="sideways"):
    optim.make_optimizer(optim.OptimizerConfig(), 10, _params(), "sideways")
