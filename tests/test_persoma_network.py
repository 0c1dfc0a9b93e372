"""PersomaNetwork: param tree = T5 tree + adapter/ + task_prompt/, encoder layouts, masking."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from persoma.models.adapters import MLPAdapter
from persoma.models.persoma_net import PersomaNetwork
from persoma.models.registry import get_adapter
from persoma.models.t5 import T5Config, Transformer

CFG = T5Config.tiny(vocab_size=96)
B, L, T, N, D, PT = 2, 7, 5, 4, 6, 3


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  enc = rng.integers(2, 96, (B, L)).astype(np.int32)
  enc[1, 5:] = 0
  tgt = rng.integers(2, 96, (B, T)).astype(np.int32)
  tgt[0, 4:] = 0
  dec = np.concatenate([np.zeros((B, 1), np.int32), tgt[:, :-1]], 1)
  emb = rng.normal(size=(B, N, D)).astype(np.float32)
  mask = np.ones((B, N), np.int32)
  mask[1, 2:] = 0
  return [jnp.asarray(x) for x in (enc, dec, tgt, emb, mask)]


def _net(composition="persoma", pt=PT):
  ad = None if composition == "text" else get_adapter("mlp", input_dim=D, max_items=8,
                                                      hidden_dim=8)
  return PersomaNetwork(CFG, adapter=ad, task_prompt_length=pt, composition=composition)


def _paths(tree):
  return {"/".join(k) for k in traverse_util.flatten_dict(tree)}


@pytest.fixture(scope="module")
def setup():
  """One jitted init shared by the tests (compiles are the slow part on CPU)."""
  enc, dec, tgt, emb, mask = _batch()
  net = _net()
  params = nn.unbox(jax.jit(net.init)(jax.random.PRNGKey(0), enc, dec, tgt, emb, mask)["params"])
  return dict(net=net, params=params, apply=jax.jit(net.apply), batch=(enc, dec, tgt, emb, mask))


def _drop(params, *keys):
  return {k: v for k, v in params.items() if k not in keys}


def test_param_tree_is_t5_tree_plus_adapter_and_prompt(setup):
  enc, dec, tgt, emb, mask = setup["batch"]
  params, net = setup["params"], setup["net"]
  t5 = nn.unbox(jax.eval_shape(Transformer(CFG).init, jax.random.PRNGKey(0), enc, dec, tgt)[
      "params"])
  extra = _paths(params) - _paths(t5)
  assert _paths(t5) <= _paths(params)
  assert "task_prompt/prompt" in extra
  assert extra - {"task_prompt/prompt"} and all(
      p.startswith("adapter/") for p in extra - {"task_prompt/prompt"})
  assert params["task_prompt"]["prompt"].shape == (PT, CFG.emb_dim)
  flat_p, flat_t = traverse_util.flatten_dict(params), traverse_util.flatten_dict(t5)
  assert all(flat_p[k].shape == flat_t[k].shape for k in flat_t)
  # every param is logically partitioned
  boxed = jax.eval_shape(net.init, jax.random.PRNGKey(0), enc, dec, tgt, emb, mask)["params"]
  leaves = jax.tree_util.tree_leaves(boxed,
                                     is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  assert all(isinstance(x, nn.LogicallyPartitioned) and len(x.names) == len(x.value.shape)
             for x in leaves)


def test_text_composition_equals_plain_t5(setup):
  enc, dec, tgt, *_ = setup["batch"]
  t5_params = _drop(setup["params"], "adapter", "task_prompt")
  net = _net("text", pt=0)
  ours = jax.jit(net.apply)({"params": t5_params}, enc, dec, tgt)
  ref = jax.jit(Transformer(CFG).apply)({"params": t5_params}, enc, dec, tgt)
  np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("composition", ["persoma", "uem"])
def test_prefix_layout_and_masks(setup, composition):
  enc, dec, tgt, emb, mask = setup["batch"]
  params = setup["params"]
  net = _net(composition)   # same param tree for both layouts
  variables = {"params": params}

  def run(v, e, m, tokens):
    prefix = net.apply(v, B, e, m, method=net.prefix)
    user = net.apply(v, e, m, method=lambda s, e, m: s.adapter(e, m))
    return prefix, user, net.apply(v, tokens, e, m, method=net.encode_with_mask)

  (prefix, pmask), (user, umask), (encoded, emask) = jax.jit(run)(variables, emb, mask, enc)
  prompt = np.broadcast_to(params["task_prompt"]["prompt"], (B, PT, CFG.emb_dim))
  assert prefix.shape == (B, N + PT, CFG.emb_dim)
  if composition == "persoma":      # [P_u ; T]
    np.testing.assert_array_equal(prefix[:, :N], user)
    np.testing.assert_array_equal(prefix[:, N:], prompt)
    np.testing.assert_array_equal(pmask, np.concatenate([umask, np.ones((B, PT))], 1))
  else:                             # [K ; UEM(U)]
    np.testing.assert_array_equal(prefix[:, :PT], prompt)
    np.testing.assert_array_equal(prefix[:, PT:], user)
    np.testing.assert_array_equal(pmask, np.concatenate([np.ones((B, PT)), umask], 1))
  assert encoded.shape == (B, N + PT + L, CFG.emb_dim)
  np.testing.assert_array_equal(emask[:, N + PT:], (np.asarray(enc) > 0).astype(np.int32))
  np.testing.assert_array_equal(emask[:, :N + PT], pmask)
  assert net.num_prefix_tokens(N) == N + PT


def test_history_changes_logits_and_padding_does_not(setup):
  enc, dec, tgt, emb, mask = setup["batch"]
  variables, apply = {"params": setup["params"]}, setup["apply"]
  base = apply(variables, enc, dec, tgt, emb, mask)
  padded = apply(variables, enc, dec, tgt, emb.at[1, 2:].set(9.0), mask)
  np.testing.assert_allclose(padded, base, atol=1e-5)
  other = apply(variables, enc, dec, tgt, emb.at[1, 0].add(1.0), mask)
  assert not np.allclose(other[1], base[1], atol=1e-4)
  np.testing.assert_allclose(other[0], base[0], atol=1e-5)   # rows are independent


def test_all_masked_history_equals_no_history(setup):
  """All-masked history: the user tokens are invisible, so [P_u ; T ; X] acts as [T ; X]."""
  enc, dec, tgt, emb, mask = setup["batch"]
  params = setup["params"]
  ours = setup["apply"]({"params": params}, enc, dec, tgt, emb, jnp.zeros_like(mask))
  ref = jax.jit(_net("text").apply)({"params": _drop(params, "adapter")}, enc, dec, tgt)
  assert np.all(np.isfinite(np.asarray(ours)))
  valid = np.asarray(tgt) > 0
  np.testing.assert_allclose(np.asarray(ours)[valid], np.asarray(ref)[valid], atol=2e-5)


def test_bad_configuration_errors():
  ad = MLPAdapter(input_dim=D)
  with pytest.raises(ValueError, match=r"composition='prefix' is unknown.*persoma"):
    PersomaNetwork(CFG, adapter=ad, composition="prefix")
  with pytest.raises(ValueError, match="needs an adapter"):
    PersomaNetwork(CFG)
  with pytest.raises(ValueError, match="takes no adapter"):
    PersomaNetwork(CFG, adapter=ad, composition="text")
  with pytest.raises(ValueError, match=r"d_model=16 but the T5 emb_dim is 32"):
    PersomaNetwork(CFG, adapter=MLPAdapter(input_dim=D, d_model=16))
  enc, dec, tgt, *_ = _batch()
  with pytest.raises(ValueError, match="needs history_embeddings"):
    jax.eval_shape(_net().init, jax.random.PRNGKey(0), enc, dec, tgt)
