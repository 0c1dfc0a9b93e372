"""Adapters: shapes, masks, logical axes, N-independence of the perceiver, bad input."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from persoma.models import adapters
from persoma.models.registry import get_adapter

B, N, D, H = 2, 6, 16, 32
SMALL = dict(d_model=H, input_dim=D, max_items=8)
CONFIGS = {
    "mlp": dict(hidden_dim=24),
    "transformer": dict(width=16, num_heads=2, mlp_dim=32),
    "perceiver": dict(width=16, num_heads=2, mlp_dim=32, num_latents=5, num_layers=2),
}


def _inputs(seed=0, n=N):
  rng = np.random.default_rng(seed)
  emb = rng.normal(size=(B, n, D)).astype(np.float32)
  mask = np.ones((B, n), np.int32)
  mask[1, n // 2:] = 0
  emb[1, n // 2:] = 0.0
  return jnp.asarray(emb), jnp.asarray(mask)


def _build(name, **kw):
  return get_adapter(name, **{**SMALL, **CONFIGS[name], **kw})


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
  if name == "perceiver":
    assert p == 5 and np.all(np.asarray(pmask) == 1)
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
