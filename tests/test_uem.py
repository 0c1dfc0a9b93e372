"""UEM: 3-layer transformer over k-field item embeddings; shapes, masking, errors."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from persoma.models.registry import get_adapter
from persoma.models.uem import UEM, field_dim

B, N, K, F, H = 2, 5, 3, 4, 16


def _inputs():
  rng = np.random.default_rng(0)
  emb = rng.normal(size=(B, N, K * F)).astype(np.float32)
  mask = np.ones((B, N), np.int32)
  mask[0, 3:] = 0
  return jnp.asarray(emb), jnp.asarray(mask)


def _uem(**kw):
  return UEM(d_model=H, input_dim=K * F, max_items=8, width=8, num_heads=2, mlp_dim=16, **kw)


def test_three_layers_one_token_per_item_and_masking():
  module = _uem()
  emb, mask = _inputs()
  variables = jax.jit(module.init)(jax.random.PRNGKey(0), emb, mask)
  params = nn.unbox(variables["params"])
  assert {"layers_0", "layers_1", "layers_2"} <= set(params) and "layers_3" not in params
  assert field_dim(module) == F
  apply = jax.jit(module.apply)
  out, omask = apply(variables, emb, mask)
  assert out.shape == (B, N, H)
  np.testing.assert_array_equal(omask, mask)
  assert np.all(np.asarray(out)[0, 3:] == 0)
  # padded items do not influence real tokens; item order does (positions are learned)
  out2, _ = apply(variables, emb.at[0, 3:].set(5.0), mask)
  np.testing.assert_allclose(out2, out, atol=1e-6)
  out3, _ = apply(variables, emb[:, ::-1], jnp.ones_like(mask))
  out4, _ = apply(variables, emb, jnp.ones_like(mask))
  assert not np.allclose(np.asarray(out3)[:, ::-1], out4, atol=1e-4)
  # all-masked: finite, zero tokens, zero mask
  out5, m5 = apply(variables, emb, jnp.zeros_like(mask))
  assert np.all(np.isfinite(np.asarray(out5))) and not np.any(np.asarray(m5))


def test_uem_is_registered_and_checks_field_width():
  emb, mask = _inputs()
  assert isinstance(get_adapter("uem", d_model=H, input_dim=K * F), UEM)
  with pytest.raises(ValueError, match=r"not a multiple of UEM.num_fields=5"):
    _uem(num_fields=5).init(jax.random.PRNGKey(0), emb, mask)
  with pytest.raises(ValueError, match=r"width D=4 but UEM.input_dim=12"):
    _uem().init(jax.random.PRNGKey(0), emb[..., :4], mask)
