"""Training modes: one real optimizer update per mode changes exactly the intended params;
frozen params are bit-identical and hold no optimizer state; LoRA init and merge equivalences."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from persoma.models import training_modes
from persoma.models.model import PersomaModel
from persoma.models.persoma_net import PersomaNetwork
from persoma.models.registry import get_adapter
from persoma.models.t5 import T5Config
from persoma.models.t5.lora import DenseGeneral

CFG = T5Config.tiny(vocab_size=96, lora_rank=2, lora_alpha=4.0)


def _batch(b=2, l=6, t=4, n=3, d=8):
  rng = np.random.default_rng(0)
  tgt = rng.integers(2, 96, (b, t)).astype(np.int32)
  return {
      "encoder_input_tokens": rng.integers(2, 96, (b, l)).astype(np.int32),
      "decoder_input_tokens": np.concatenate([np.zeros((b, 1), np.int32), tgt[:, :-1]], 1),
      "decoder_target_tokens": tgt,
      "decoder_loss_weights": np.ones((b, t), np.float32),
      "history_embeddings": rng.normal(size=(b, n, d)).astype(np.float32),
      "history_mask": np.ones((b, n), np.int32),
  }


def _model(cfg):
  net = PersomaNetwork(cfg, adapter=get_adapter("mlp", input_dim=8, hidden_dim=8),
                       task_prompt_length=2)
  return PersomaModel(net)


def _random_params(model, batch, seed=0):
  """numpy-filled params (deterministic) of the model's shapes; avoids a slow jitted init."""
  shapes = {k: v.shape for k, v in batch.items()}
  abstract = nn.unbox(jax.eval_shape(
      lambda r: model.get_initial_variables(r, shapes), jax.random.PRNGKey(0))["params"])
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda a: jnp.asarray((rng.normal(size=a.shape) / np.sqrt(a.shape[0]) if len(a.shape) > 1
                             else 1.0 + 0.1 * rng.normal(size=a.shape)).astype(np.float32)),
      abstract)


def _flat(tree):
  return {"/".join(k): v for k, v in traverse_util.flatten_dict(tree).items()}


@pytest.fixture(scope="module")
def setup():
  batch = _batch()
  model = _model(CFG)
  params = _random_params(model, batch)   # lora_b random too, so every trainable leaf gets grad
  grads = jax.jit(jax.grad(lambda p: model.loss_fn(p, batch, None)[0]))(params)
  return model, params, grads, batch


def test_masks_select_the_intended_paths(setup):
  _, params, _, _ = setup
  paths = _flat(params)
  frozen = training_modes.trainable_paths(params, "frozen")
  assert frozen and all(p.startswith(("adapter/", "task_prompt/")) for p in frozen)
  assert set(frozen) == {p for p in paths if p.startswith(("adapter/", "task_prompt/"))}
  lora = set(training_modes.trainable_paths(params, "lora"))
  lora_leaves = {p for p in paths if p.endswith(("/lora_a", "/lora_b"))}
  assert lora == set(frozen) | lora_leaves
  assert len(lora_leaves) == 2 * (2 * 7 + 2 * 11)   # a+b; 2 layers; 7 enc / 11 dec targets
  assert training_modes.trainable_paths(params, "full") == sorted(paths)
  mask = _flat(training_modes.trainable_mask(params, "lora"))
  assert mask["encoder/layers_0/attention/query/lora_b"] is True
  assert mask["encoder/layers_0/attention/query/kernel"] is False


@pytest.mark.parametrize("mode", ["frozen", "lora", "full"])
def test_one_update_changes_exactly_the_trainable_params(setup, mode):
  _, params, grads, _ = setup
  tx = training_modes.make_optimizer(optax.adam(1e-2), params, mode)
  mask = training_modes.trainable_mask(params, mode)
  state = jax.jit(tx.init)(params)

  @jax.jit
  def step(p, g, s):
    updates, s = tx.update(g, s, p)
    return training_modes.apply_updates(p, updates, mask), s

  new, state = step(params, grads, state)
  flat_old, flat_new, flat_mask = _flat(params), _flat(new), _flat(mask)
  for path, trainable in flat_mask.items():
    old, upd = np.asarray(flat_old[path]), np.asarray(flat_new[path])
    if trainable:
      assert not np.array_equal(old, upd), f"{mode}: trainable {path} did not change"
    else:
      assert old.tobytes() == upd.tobytes(), f"{mode}: frozen {path} changed"
  # Optimizer state exists only for trainable params: adam keeps mu and nu (+ scalar counts).
  state_size = sum(x.size for x in jax.tree_util.tree_leaves(state) if x.ndim > 0)
  assert state_size == 2 * training_modes.count_params(params, mask)
  assert training_modes.count_params(params, mask) < training_modes.count_params(params) or \
      mode == "full"


def test_lora_at_init_equals_base_and_merge_agrees(setup):
  model, params, _, batch = setup
  # the real LoRA init: B = 0
  dense = DenseGeneral(4, ("embed", "mlp"), lora_rank=2)
  lora_vars = nn.unbox(dense.init(jax.random.PRNGKey(0), jnp.ones((1, 3))))["params"]
  assert np.all(np.asarray(lora_vars["lora_b"]) == 0) and np.any(lora_vars["lora_a"] != 0)

  base_model = _model(CFG.replace(lora_rank=0))
  base_params = _strip_lora(params)
  at_init = _set_lora_b_zero(params)
  lora_logits = jax.jit(model.score_batch, static_argnames="return_intermediates")
  base_logits = jax.jit(base_model.score_batch, static_argnames="return_intermediates")
  s_lora = lora_logits(at_init, batch, return_intermediates=True)[1]["token_scores"]
  s_base = base_logits(base_params, batch, return_intermediates=True)[1]["token_scores"]
  np.testing.assert_allclose(s_lora, s_base, atol=1e-6)

  # merged vs unmerged with non-zero B
  merged_model, merged = model.merge_lora(params)
  assert not any(p.endswith(("lora_a", "lora_b")) for p in _flat(merged))
  s_unmerged = lora_logits(params, batch, return_intermediates=True)[1]["token_scores"]
  s_merged = base_logits(merged, batch, return_intermediates=True)[1]["token_scores"]
  assert merged_model.network.t5_config.lora_rank == 0
  assert not np.allclose(s_unmerged, s_base, atol=1e-3)   # the LoRA update matters here
  np.testing.assert_allclose(s_merged, s_unmerged, atol=1e-4)


def _strip_lora(params):
  return traverse_util.unflatten_dict(
      {k: v for k, v in traverse_util.flatten_dict(params).items()
       if k[-1] not in ("lora_a", "lora_b")})


def _set_lora_b_zero(params):
  return traverse_util.unflatten_dict(
      {k: (jnp.zeros_like(v) if k[-1] == "lora_b" else v)
       for k, v in traverse_util.flatten_dict(params).items()})


def test_bad_modes_are_clear_errors(setup):
  _, params, _, _ = setup
  with pytest.raises(ValueError,
                     match=r"unknown training mode .frozn.*\[.frozen., .full., .lora.\]"):
    training_modes.trainable_mask(params, "frozn")
  with pytest.raises(ValueError, match="unknown training mode"):
    training_modes.make_optimizer(optax.sgd(0.1), params, "prefix")
  no_lora = _strip_lora(params)
  with pytest.raises(ValueError, match="no lora_a/lora_b: set T5Config.lora_rank > 0"):
    training_modes.make_optimizer(optax.sgd(0.1), no_lora, "lora")
  text_only = {k: v for k, v in no_lora.items() if k not in ("adapter", "task_prompt")}
  with pytest.raises(ValueError, match="'frozen' leaves no trainable parameter"):
    training_modes.make_optimizer(optax.sgd(0.1), text_only, "frozen")
