"""LoRA dense: param placement/axes, zero-init B equals the base model, merging equals unmerged."""
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from persoma.models.restore import restore_params
from persoma.models.t5.config import T5Config
from persoma.models.t5.lora import DenseGeneral, merge_lora
from persoma.models.t5.network import Transformer

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE = SHARED / "fixtures" / "t5x_tiny"
LORA_CFG = T5Config.tiny(vocab_size=96, lora_rank=4, lora_alpha=8.0)


@pytest.fixture(scope="module")
def fixture():
  if not (FIXTURE / "params.npz").exists():
    pytest.skip(f"T5X fixture not found at {FIXTURE} (shared data absent)")
  ref = dict(np.load(FIXTURE / "reference.npz"))
  model = Transformer(LORA_CFG)
  enc, dec = ref["encoder_input_tokens"], ref["decoder_input_tokens"]
  abstract = jax.eval_shape(lambda r: model.init(r, enc, dec, dec), jax.random.PRNGKey(3))
  params, report = restore_params(abstract["params"], FIXTURE / "legacy" / "checkpoint_0")
  # The LoRA leaves the checkpoint lacks stay abstract; give them a LoRA-style fresh init
  # (A random, B zero) without compiling a full model init.
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    if not isinstance(leaf.value, jax.ShapeDtypeStruct):
      return leaf
    shape = leaf.value.shape
    if path[-1].key == "lora_a":
      return leaf.replace_boxed(jnp.asarray(rng.normal(size=shape) / np.sqrt(shape[0]),
                                            jnp.float32))
    return leaf.replace_boxed(jnp.zeros(shape, jnp.float32))

  params = jax.tree_util.tree_map_with_path(
      fill, params, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  return params, report, ref


def test_lora_params_sit_beside_targeted_kernels_with_axes():
  model = Transformer(LORA_CFG)
  x = jnp.ones((1, 4), jnp.int32)
  boxed = jax.eval_shape(lambda r: model.init(r, x, x, x), jax.random.PRNGKey(0))["params"]
  flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(boxed).items()}
  lora = {k: v for k, v in flat.items() if k.endswith(("lora_a", "lora_b"))}
  parents = {k.rsplit("/", 1)[0] for k in lora}
  for parent in parents:
    kernel = flat[parent + "/kernel"]
    a, b = flat[parent + "/lora_a"], flat[parent + "/lora_b"]
    assert a.value.shape == (kernel.value.shape[0], 4) and b.value.shape == (4, kernel.value.shape[1])
    assert tuple(a.names) == (kernel.names[0], "lora_rank")
    assert tuple(b.names) == ("lora_rank", kernel.names[1])
  leaf_names = {p.rsplit("/", 1)[-1] for p in parents}
  assert leaf_names == {"query", "key", "value", "out", "wi_0", "wi_1", "wo"}
  assert not any(p.startswith(("token_embedder", "decoder/logits_dense")) for p in parents)
  # 2 encoder layers x 7 dense + 2 decoder layers x 11 dense
  assert len(parents) == 2 * 7 + 2 * 11
  # Rank 0: no LoRA params anywhere; a restricted target list only adapts those layers.
  plain = jax.eval_shape(lambda r: Transformer(LORA_CFG.replace(lora_rank=0)).init(r, x, x, x),
                         jax.random.PRNGKey(0))["params"]
  assert not any("lora" in "/".join(k) for k in traverse_util.flatten_dict(plain))
  qv = LORA_CFG.replace(lora_targets=("query", "value"))
  some = jax.eval_shape(lambda r: Transformer(qv).init(r, x, x, x), jax.random.PRNGKey(0))
  names = {k[-2] for k in traverse_util.flatten_dict(some["params"]) if k[-1] == "lora_a"}
  assert names == {"query", "value"}


def test_zero_b_equals_base_model_and_trained_b_changes_it(fixture):
  params, report, ref = fixture
  assert len([k for k in report.kept_from_template if k.endswith("lora_b")]) == 36
  model = Transformer(LORA_CFG)
  args = (ref["encoder_input_tokens"], ref["decoder_input_tokens"], ref["decoder_target_tokens"])
  run = jax.jit(lambda p: model.apply({"params": p}, *args))
  np.testing.assert_allclose(run(params), ref["logits"], atol=1e-5, rtol=0)
  bumped = _perturb_b(params)
  assert np.abs(np.asarray(run(bumped)) - ref["logits"]).max() > 1e-3


def _perturb_b(params):
  key = [jax.random.PRNGKey(7)]

  def bump(path, leaf):
    if path[-1].key != "lora_b":
      return leaf
    key[0], sub = jax.random.split(key[0])
    return leaf.replace_boxed(0.05 * jax.random.normal(sub, leaf.value.shape))

  return jax.tree_util.tree_map_with_path(bump, params,
                                          is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))


def test_merged_equals_unmerged(fixture):
  params, _, ref = fixture
  bumped = _perturb_b(params)
  merged = merge_lora(bumped, LORA_CFG)
  flat = traverse_util.flatten_dict(merged)
  assert not any(k[-1] in ("lora_a", "lora_b") for k in flat)
  assert len(flat) == 52
  args = (ref["encoder_input_tokens"], ref["decoder_input_tokens"], ref["decoder_target_tokens"])
  lora_model, plain_model = Transformer(LORA_CFG), Transformer(LORA_CFG.replace(lora_rank=0))
  unmerged_out, merged_out = jax.jit(lambda a, b: (
      lora_model.apply({"params": a}, *args), plain_model.apply({"params": b}, *args)))(
          bumped, merged)
  assert np.abs(np.asarray(unmerged_out) - ref["logits"]).max() > 1e-3
  np.testing.assert_allclose(merged_out, unmerged_out, atol=1e-5, rtol=0)


def test_dense_general_lora_math_and_errors():
  dense = DenseGeneral(features=(2, 3), kernel_axes=("embed", "joined_kv"), lora_rank=2,
                       lora_alpha=4.0)
  x = jax.random.normal(jax.random.PRNGKey(0), (5, 4))
  p = nn.meta.unbox(dense.init(jax.random.PRNGKey(1), x))["params"]
  np.testing.assert_array_equal(p["lora_b"], np.zeros((2, 6)))
  p = {**p, "lora_b": jnp.ones((2, 6))}
  y = jax.jit(dense.apply)({"params": p}, x)
  want = x @ p["kernel"] + 2.0 * (x @ p["lora_a"]) @ p["lora_b"]
  np.testing.assert_allclose(y, want.reshape(5, 2, 3), atol=1e-5)
  with pytest.raises(ValueError, match="lora_rank is 0"):
    merge_lora(p, LORA_CFG.replace(lora_rank=0))
  with pytest.raises(ValueError, match="no lora_a/lora_b"):
    merge_lora({"dense": {"kernel": p["kernel"]}}, LORA_CFG)
  with pytest.raises(ValueError, match="incomplete LoRA"):
    merge_lora({"dense": {"kernel": p["kernel"], "lora_a": p["lora_a"]}}, LORA_CFG)
