"""The Flax T5: T5X param tree (names, shapes, logical axes), numerics vs T5X, prefix embeddings."""
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from persoma.models.t5 import losses
from persoma.models.t5.config import T5Config
from persoma.models.t5.network import Transformer, encoder_mask

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE = SHARED / "fixtures" / "t5x_tiny"
CFG = T5Config.tiny(vocab_size=96)


@pytest.fixture(scope="module")
def fixture():
  if not (FIXTURE / "params.npz").exists():
    pytest.skip(f"T5X fixture not found at {FIXTURE} (shared data absent)")
  params = dict(np.load(FIXTURE / "params.npz"))
  ref = dict(np.load(FIXTURE / "reference.npz"))
  tree = traverse_util.unflatten_dict({tuple(k.split("/")): jnp.asarray(v)
                                       for k, v in params.items()})
  return tree, ref


def _abstract_init(cfg, enc_len=12, dec_len=6, batch=2):
  """Boxed param tree of ShapeDtypeStructs (no compile, no compute)."""
  model = Transformer(cfg)
  enc = jnp.ones((batch, enc_len), jnp.int32)
  dec = jnp.ones((batch, dec_len), jnp.int32)
  return jax.eval_shape(lambda rng: model.init(rng, enc, dec, dec), jax.random.PRNGKey(0))["params"]


def test_param_tree_names_shapes_axes_match_t5x():
  if not (FIXTURE / "param_tree.txt").exists():
    pytest.skip(f"T5X fixture not found at {FIXTURE} (shared data absent)")
  expected = {}
  for line in (FIXTURE / "param_tree.txt").read_text().splitlines():
    if line.startswith("#") or not line.strip():
      continue
    key, shape, dtype, axes = line.split("\t")
    expected[key] = (tuple(int(s) for s in shape.strip("[]").split(",")), dtype,
                     tuple(axes.split(",")))
  boxed = _abstract_init(CFG)
  flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(boxed).items()}
  assert set(flat) == set(expected)
  for key, leaf in flat.items():
    assert isinstance(leaf, nn.LogicallyPartitioned), key
    shape, dtype, axes = expected[key]
    assert leaf.value.shape == shape and str(leaf.value.dtype) == dtype, key
    assert tuple(leaf.names) == axes, key


def test_forward_matches_t5x_under_jit(fixture):
  params, ref = fixture
  model = Transformer(CFG)
  enc_t, dec_in, dec_t = (ref["encoder_input_tokens"], ref["decoder_input_tokens"],
                          ref["decoder_target_tokens"])

  @jax.jit
  def run(p):
    encoded = model.apply({"params": p}, enc_t, method=model.encode)
    logits = model.apply({"params": p}, enc_t, dec_in, dec_t)
    wl = losses.compute_weighted_cross_entropy(logits, dec_t, ref["decoder_loss_weights"])
    return encoded, logits, wl, losses.token_scores(logits, dec_t, ref["decoder_loss_weights"])

  encoded, logits, wl, token_scores = run(params)
  np.testing.assert_allclose(encoded, ref["encoder_output"], atol=1e-5, rtol=0)
  # All positions, including decoder pad rows (T5X masks them fully -> uniform attention).
  np.testing.assert_allclose(logits, ref["logits"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(token_scores, ref["score_batch_token_scores"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(token_scores.sum(-1), ref["score_batch"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(wl.loss, ref["loss_fn_loss"], atol=1e-5, rtol=0)
  np.testing.assert_allclose(wl.z_loss, ref["loss_fn_z_loss"], atol=1e-7, rtol=0)
  np.testing.assert_allclose(wl.cross_ent_loss, ref["loss_fn_cross_ent_loss"], atol=1e-5, rtol=0)
  assert float(wl.weight_sum) == ref["decoder_loss_weights"].sum()


def test_masked_prefix_is_invisible_and_unmasked_prefix_matters(fixture):
  params, ref = fixture
  model = Transformer(CFG)
  enc_t, dec_in, dec_t = (ref["encoder_input_tokens"], ref["decoder_input_tokens"],
                          ref["decoder_target_tokens"])
  prefix = jax.random.normal(jax.random.PRNGKey(1), (2, 3, CFG.emb_dim))

  @jax.jit
  def run(p, prefix_mask):
    encoded = model.apply({"params": p}, enc_t, prefix, prefix_mask, method=model.encode)
    mask = encoder_mask(enc_t, prefix_mask)
    logits = model.apply({"params": p}, encoded, mask, dec_in, dec_t, method=model.decode)
    full = model.apply({"params": p}, enc_t, dec_in, dec_t, prefix_embeddings=prefix,
                       prefix_mask=prefix_mask)
    return encoded, mask, logits, full

  hidden_mask = jnp.array([[0, 0, 0], [0, 0, 0]], jnp.int32)
  encoded, mask, logits, full = run(params, hidden_mask)
  assert encoded.shape == (2, 3 + 12, CFG.emb_dim)
  assert mask.shape == (2, 15)
  np.testing.assert_array_equal(mask[:, 3:], (enc_t > 0).astype(np.int32))
  # Relative positions are shift invariant, so a fully masked prefix changes nothing at real
  # positions (pad rows attend uniformly to every key, so they see the extra keys).
  real_enc, real_dec = enc_t > 0, dec_t > 0
  np.testing.assert_allclose(np.asarray(encoded[:, 3:])[real_enc], ref["encoder_output"][real_enc],
                             atol=1e-5, rtol=0)
  np.testing.assert_allclose(np.asarray(logits)[real_dec], ref["logits"][real_dec], atol=1e-5,
                             rtol=0)
  np.testing.assert_allclose(full, logits, atol=1e-6, rtol=0)

  visible = jnp.array([[1, 1, 0], [1, 0, 0]], jnp.int32)
  encoded_v, mask_v, logits_v, _ = run(params, visible)
  np.testing.assert_array_equal(mask_v[:, :3], visible)
  assert np.abs(np.asarray(encoded_v[:, 3:]) - ref["encoder_output"]).max() > 1e-3
  assert np.abs(np.asarray(logits_v) - ref["logits"]).max() > 1e-3
  # Default prefix mask = all ones.
  enc_default = jax.jit(lambda p: model.apply({"params": p}, enc_t, prefix,
                                               method=model.encode))(params)
  enc_ones = run(params, jnp.ones((2, 3), jnp.int32))[0]
  np.testing.assert_allclose(enc_default, enc_ones, atol=1e-6)


def test_bad_prefix_shapes_are_named(fixture):
  params, ref = fixture
  model = Transformer(CFG)
  enc_t = ref["encoder_input_tokens"]
  with pytest.raises(ValueError, match=r"emb_dim=32.*\(2, 3, 16\)"):
    model.apply({"params": params}, enc_t, jnp.zeros((2, 3, 16)), method=model.encode)
  with pytest.raises(ValueError, match="prefix_mask shape"):
    model.apply({"params": params}, enc_t, jnp.zeros((2, 3, 32)), jnp.ones((2, 4), jnp.int32),
                method=model.encode)
  with pytest.raises(ValueError, match="batch 3"):
    model.apply({"params": params}, enc_t, jnp.zeros((3, 3, 32)), method=model.encode)


def test_from_scratch_init_is_t5x_like():
  cfg = T5Config.tiny(vocab_size=512, emb_dim=128, num_heads=4, head_dim=32, mlp_dim=256,
                      num_encoder_layers=1, num_decoder_layers=1)
  model = Transformer(cfg)
  enc, dec = jnp.ones((1, 4), jnp.int32), jnp.ones((1, 2), jnp.int32)
  init = jax.jit(lambda rng: model.init(rng, enc, dec, dec)["params"])
  boxed = init(jax.random.PRNGKey(0))
  p = nn.meta.unbox(boxed)
  attn = p["encoder"]["layers_0"]["attention"]
  q_std, k_std = float(jnp.std(attn["query"]["kernel"])), float(jnp.std(attn["key"]["kernel"]))
  # key ~ N(0, 1/fan_in); query additionally scaled by head_dim**-0.5 (no scaling in forward).
  assert abs(k_std - 128 ** -0.5) < 0.1 * 128 ** -0.5
  assert abs(q_std / k_std - 32 ** -0.5) < 0.1 * 32 ** -0.5
  assert abs(float(jnp.std(p["token_embedder"]["embedding"])) - 1.0) < 0.05
  np.testing.assert_array_equal(p["encoder"]["encoder_norm"]["scale"], np.ones(128))
  # Same seed -> same params; a different seed -> different params.
  again = nn.meta.unbox(init(jax.random.PRNGKey(0)))
  other = nn.meta.unbox(init(jax.random.PRNGKey(1)))
  same = jax.tree_util.tree_map(lambda a, b: bool(jnp.array_equal(a, b)), p, again)
  assert all(jax.tree_util.tree_leaves(same))
  assert not jnp.array_equal(other["token_embedder"]["embedding"], p["token_embedder"]["embedding"])


def test_dropout_only_when_enabled(fixture):
  params, ref = fixture
  model = Transformer(T5Config.tiny(vocab_size=96, dropout_rate=0.3))
  tokens = ref["encoder_input_tokens"]

  @jax.jit
  def run(key):
    no_drop = model.apply({"params": params}, tokens, enable_dropout=False, method=model.encode)
    drop = model.apply({"params": params}, tokens, enable_dropout=True, method=model.encode,
                       rngs={"dropout": key})
    return no_drop, drop

  plain0, drop0 = run(jax.random.PRNGKey(0))
  plain1, drop1 = run(jax.random.PRNGKey(1))
  drop0_again = run(jax.random.PRNGKey(0))[1]
  np.testing.assert_array_equal(plain0, plain1)
  np.testing.assert_array_equal(drop0, drop0_again)
  assert not np.allclose(drop0, drop1)
  assert not np.allclose(drop0, plain0)


def test_bfloat16_compute_and_tied_logits(fixture):
  params, ref = fixture
  cfg = T5Config.tiny(vocab_size=96, dtype="bfloat16", logits_via_embedding=True)
  flat = traverse_util.flatten_dict(nn.meta.unbox(_abstract_init(cfg)))
  assert ("decoder", "logits_dense", "kernel") not in flat
  assert all(v.dtype == jnp.float32 for v in flat.values())  # params stay float32
  tied = {**params, "decoder": {k: v for k, v in params["decoder"].items()
                                if k != "logits_dense"}}
  model = Transformer(cfg)
  logits = jax.jit(model.apply)({"params": tied}, ref["encoder_input_tokens"],
                                ref["decoder_input_tokens"], ref["decoder_target_tokens"])
  assert logits.shape == (2, 6, 96) and logits.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize("preset,count", [("small", 76_961_152), ("base", 247_577_856)])
def test_published_param_counts(preset, count):
  """Same totals as the released T5 v1.1 / FlanT5 checkpoints (untied output projection)."""
  from persoma.models.t5.network import param_count
  assert param_count(_abstract_init(T5Config.preset(preset), enc_len=4, dec_len=2)) == count
