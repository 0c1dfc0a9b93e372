"""Adapters: shapes, masks, logical axes, N-independence of the perceiver and the set pooling,
order invariance of the set pooling, bad input."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from persoma.models import adapters, set_pool
from persoma.models.registry import get_adapter

B, N, D, H = 2, 6, 16, 32
SMALL = dict(d_model=H, input_dim=D, max_items=8)
CONFIGS = {
    "mlp": dict(hidden_dim=24),
    "mlp_items": dict(hidden_dim=24, item_heads=True, num_genres=4),
    "mlp_length": dict(hidden_dim=24, length_token=True),
    "transformer": dict(width=16, num_heads=2, mlp_dim=32),
    "perceiver": dict(width=16, num_heads=2, mlp_dim=32, num_latents=5, num_layers=2),
    "pool": dict(hidden_dim=24, summary_tokens=3),
    "pool_ratio": dict(hidden_dim=24, summary_tokens=3, pooling="ratio", ratio_channels=4),
    "genre_stats": dict(hidden_dim=24, num_genres=4, genre_embed_dim=8),
}
REGISTRY_NAME = {"pool_ratio": "pool", "mlp_items": "mlp", "mlp_length": "mlp"}  # test configs that are a registered adapter's variant
# adapters with a fixed number of prompt tokens
RESAMPLERS = {"perceiver": 5, "pool": 3, "pool_ratio": 3, "genre_stats": 4}


def _inputs(seed=0, n=N):
  rng = np.random.default_rng(seed)
  emb = rng.normal(size=(B, n, D)).astype(np.float32)
  mask = np.ones((B, n), np.int32)
  mask[1, n // 2:] = 0
  emb[1, n // 2:] = 0.0
  return jnp.asarray(emb), jnp.asarray(mask)


def _build(name, **kw):
  return get_adapter(REGISTRY_NAME.get(name, name), **{**SMALL, **CONFIGS[name], **kw})


@functools.lru_cache(maxsize=None)
def _ready(name):
  """(module, variables, jitted apply) per adapter, initialised once (compiles are slow)."""
  module = _build(name)
  emb, mask = _inputs()
  variables = jax.jit(module.init)(jax.random.PRNGKey(0), emb, mask)
  return module, variables, jax.jit(module.apply)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shapes_mask_and_no_leak_from_padding(name):
  module, variables, apply = _ready(name)
  emb, mask = _inputs()
  prompts, pmask = apply(variables, emb, mask)
  p = module.num_tokens(N)
  assert prompts.shape == (B, p, H) and pmask.shape == (B, p)
  assert pmask.dtype == jnp.int32
  if name in RESAMPLERS:
    assert p == RESAMPLERS[name] and np.all(np.asarray(pmask) == 1)
  elif name == "mlp_length":  # the items, then one length token per non-empty row
    assert p == N + 1
    np.testing.assert_array_equal(pmask[:, :N], mask)
    np.testing.assert_array_equal(pmask[:, N], [1, 1])
    assert np.all(np.asarray(prompts)[1, N // 2:N] == 0.0)
  else:
    np.testing.assert_array_equal(pmask, mask)
    # masked positions give zero prompt vectors
    assert np.all(np.asarray(prompts)[1, N // 2:] == 0.0)
  # Changing the padded (masked) rows must not change any output.
  emb2 = emb.at[1, N // 2:].set(7.0)
  prompts2, _ = apply(variables, emb2, mask)
  np.testing.assert_allclose(prompts2, prompts, atol=1e-6)
  # Changing a real item does change the output of its row.
  emb3 = emb.at[1, 0].add(1.0)
  prompts3, _ = apply(variables, emb3, mask)
  assert not np.allclose(prompts3[1], prompts[1])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_param_has_logical_axes(name):
  module = _build(name)
  emb, mask = _inputs()
  boxed = jax.eval_shape(module.init, jax.random.PRNGKey(0), emb, mask)["params"]
  leaves = jax.tree_util.tree_leaves(
      boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  assert leaves
  for leaf in leaves:
    assert isinstance(leaf, nn.LogicallyPartitioned), leaf
    assert len(leaf.names) == leaf.value.ndim
    assert all(isinstance(n, str) for n in leaf.names)
  names = {n for leaf in leaves for n in leaf.names}
  assert "history_embed" in names and "embed" in names


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_all_masked_history_is_finite_and_masked(name):
  module, variables, apply = _ready(name)
  emb, mask = _inputs()
  empty = jnp.zeros_like(mask)
  prompts, pmask = apply(variables, emb, empty)
  assert np.all(np.isfinite(np.asarray(prompts)))
  assert np.all(np.asarray(pmask) == 0)
  assert np.all(np.asarray(prompts) == 0.0)
  grads = jax.jit(jax.grad(lambda v: jnp.sum(module.apply(v, emb, empty)[0] ** 2)))(variables)
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_perceiver_resamples_any_n_to_r():
  _, variables, apply = _ready("perceiver")
  for n in (1,):   # N=6 is covered above; one more shape keeps the compile count low
    e, _ = _inputs(seed=n, n=n)
    m = jnp.zeros((B, n), jnp.int32).at[:, 0].set(1)   # only the first item real
    prompts, pmask = apply(variables, e, m)
    assert prompts.shape == (B, 5, H) and pmask.shape == (B, 5)
    assert np.all(np.asarray(pmask) == 1)
    assert np.all(np.isfinite(np.asarray(prompts)))


@pytest.mark.parametrize("name", ["pool", "pool_ratio", "genre_stats"])
def test_set_pool_ignores_item_order_and_takes_any_n(name):
  module, variables, apply = _ready(name)
  emb, mask = _inputs()
  prompts, _ = apply(variables, emb, mask)
  # reversing the real items of row 0 (all N real) and of row 1 (first N/2 real) changes nothing
  order0, order1 = np.arange(N)[::-1], np.r_[np.arange(N // 2)[::-1], np.arange(N // 2, N)]
  shuffled = jnp.stack([emb[0, order0], emb[1, order1]])
  np.testing.assert_allclose(apply(variables, shuffled, mask)[0], prompts, atol=1e-5)
  # the same items behind more padding: same tokens (a longer N is only more masked rows)
  padded = jnp.concatenate([emb, jnp.zeros((B, 2, D))], axis=1)
  pmask = jnp.concatenate([mask, jnp.zeros((B, 2), mask.dtype)], axis=1)
  out, out_mask = apply(variables, padded, pmask)
  assert out.shape == (B, RESAMPLERS[name], H) and np.all(np.asarray(out_mask) == 1)
  np.testing.assert_allclose(out, prompts, atol=1e-5)
  # but the item count is seen: the same items twice differ from them once
  twice = jnp.concatenate([emb[:1, :3], emb[:1, :3]], axis=1)
  once = jnp.concatenate([emb[:1, :3], jnp.zeros((1, 3, D))], axis=1)
  m_twice, m_once = jnp.ones((1, 6), jnp.int32), jnp.array([[1, 1, 1, 0, 0, 0]], jnp.int32)
  assert not np.allclose(apply(variables, twice, m_twice)[0], apply(variables, once, m_once)[0])


def test_gated_ratio_is_the_shrunk_mean_of_the_gated_items():
  # channel 0 gates items 0 and 2 (values 4, 2), channel 1 gates none; item 3 is padding
  gate = jnp.array([[[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]])
  value = jnp.array([[[4.0, 9.0], [7.0, 9.0], [2.0, 9.0], [100.0, 100.0]]])
  mask = jnp.array([[1, 1, 1, 0]])
  ratio, log_total = jax.jit(set_pool.gated_ratio)(gate, value, mask)
  np.testing.assert_allclose(ratio, [[(4.0 + 2.0) / 3.0, 0.0]], rtol=1e-6)
  np.testing.assert_allclose(log_total, [[np.log(3.0), 0.0]], rtol=1e-6)


def test_ratio_pooling_adds_only_its_channels_and_checks_its_fields():
  mean, ratio = _shapes(_build("pool")), _shapes(_build("pool_ratio"))
  assert set(ratio) - set(mean) == {"ratio_gate", "ratio_value"}
  assert ratio["ratio_gate"]["kernel"] == (24, 4)
  # rho sees the mean (W), the log count (1) and per channel a mean and a log total (2C)
  assert mean["rho_hidden"]["kernel"] == (24 + 1, 24)
  assert ratio["rho_hidden"]["kernel"] == (24 + 1 + 2 * 4, 24)
  emb, mask = _inputs()
  with pytest.raises(ValueError, match="pooling must be one of"):
    _build("pool", pooling="max").init(jax.random.PRNGKey(0), emb, mask)


def _shapes(module):
  emb, mask = _inputs()
  params = jax.eval_shape(module.init, jax.random.PRNGKey(0), emb, mask)["params"]
  return jax.tree_util.tree_map(lambda x: x.shape, nn.unbox(params))


def test_depth_and_width_are_fields():
  v2, v4 = _shapes(_build("mlp", num_layers=2)), _shapes(_build("mlp", num_layers=4))
  assert sorted(v2) == ["layers_0", "layers_1"]
  assert sorted(v4) == ["layers_0", "layers_1", "layers_2", "layers_3"]
  assert v4["layers_1"]["kernel"] == (24, 24) and v4["layers_3"]["kernel"] == (24, H)
  vt = _shapes(_build("transformer", num_layers=2, width=8))
  assert {"layers_0", "layers_1"} <= set(vt) and "layers_2" not in vt
  assert vt["items"]["input_projection"]["kernel"] == (D, 8)
  assert vt["items"]["position_embedding"] == (8, 8)   # [max_items, width]
  vp = _shapes(_build("perceiver", num_latents=7, num_layers=3))
  assert vp["latents"] == (7, 16) and "layers_2" in vp and "layers_3" not in vp
  vs = _shapes(_build("pool", num_layers=3, summary_tokens=4))
  assert sorted(k for k in vs if k.startswith("phi_")) == ["phi_0", "phi_1", "phi_2"]
  assert vs["phi_0"]["kernel"] == (D, 24) and vs["rho_out"]["kernel"] == (24, 4, H)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_wrong_embedding_width_is_clear_error(name):
  module = _build(name)
  emb, mask = _inputs()
  with pytest.raises(ValueError, match=r"width D=17 .*input_dim=16"):
    module.init(jax.random.PRNGKey(0), jnp.zeros((B, N, 17)), mask)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_too_many_items_is_clear_error(name):
  module = _build(name)
  emb, mask = _inputs(n=9)
  with pytest.raises(ValueError, match=r"N=9 .*max_items=8"):
    module.init(jax.random.PRNGKey(0), emb, mask)


def test_mask_shape_and_unset_fields_are_errors():
  emb, mask = _inputs()
  module = _build("mlp")
  with pytest.raises(ValueError, match="history_mask shape"):
    module.init(jax.random.PRNGKey(0), emb, mask[:, :3])
  with pytest.raises(ValueError, match="input_dim is not set"):
    adapters.MLPAdapter(d_model=H).init(jax.random.PRNGKey(0), emb, mask)


def test_unknown_adapter_name_lists_choices():
  with pytest.raises(ValueError, match=r"unknown adapter 'mpl'.*mlp.*perceiver"):
    get_adapter("mpl", d_model=H, input_dim=D)
  with pytest.raises(ValueError, match=r"MLPAdapter has no field 'widht'"):
    get_adapter("mlp", widht=3)


def test_length_token_tells_a_whole_history_from_a_full_window_and_keeps_the_item_tokens():
  module, variables, apply = _ready("mlp_length")
  emb, mask = _inputs()
  prompts, _ = apply(variables, emb, mask)
  # Row 0 shows N items (a full window), row 1 fewer (a whole history): different length tokens,
  # both non-zero, and the same row with one more item shown changes only its length token.
  length = np.asarray(prompts[:, N])
  assert not np.allclose(length[0], length[1]) and np.all(np.abs(length).sum(axis=1) > 0)
  more = mask.at[1, N // 2].set(1)
  prompts_more, _ = apply(variables, emb, more)
  assert not np.allclose(prompts_more[1, N], prompts[1, N])
  np.testing.assert_allclose(prompts_more[1, :N // 2], prompts[1, :N // 2], atol=1e-6)
  # The item tokens are the plain MLP's on the same item layers.
  plain = _build("mlp")
  params = {k: v for k, v in variables["params"].items() if k != "length_token"}
  assert set(variables["params"]) - set(params) == {"length_token"}
  plain_prompts, plain_mask = jax.jit(plain.apply)({"params": params}, emb, mask)
  np.testing.assert_allclose(prompts[:, :N], plain_prompts, atol=1e-6)
  np.testing.assert_array_equal(plain_mask, mask)
