"""T5X checkpoint reader: both formats, T5X numerics after restore, partial restore, bad input."""
import shutil
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import msgpack
import numpy as np
import pytest
import tensorstore as ts

from persoma.models import checkpoints
from persoma.models.checkpoints import CheckpointError, load_t5x_checkpoint
from persoma.models.restore import restore_params
from persoma.models.t5 import decoding, losses
from persoma.models.t5.config import T5Config
from persoma.models.t5.network import Transformer, encoder_mask

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE = SHARED / "fixtures" / "t5x_tiny"
LEGACY = FIXTURE / "legacy" / "checkpoint_0"
ORBAX = FIXTURE / "orbax" / "checkpoint_0"
CFG = T5Config.tiny(vocab_size=96)


@pytest.fixture(scope="module")
def fixture():
  if not (FIXTURE / "params.npz").exists():
    pytest.skip(f"T5X fixture not found at {FIXTURE} (shared data absent)")
  return dict(np.load(FIXTURE / "params.npz")), dict(np.load(FIXTURE / "reference.npz"))


def _template(cfg, batch=2, enc_len=12, dec_len=6):
  """Boxed abstract param tree (ShapeDtypeStructs), as for a large model one would not init."""
  model = Transformer(cfg)
  enc, dec = jnp.ones((batch, enc_len), jnp.int32), jnp.ones((batch, dec_len), jnp.int32)
  return jax.eval_shape(lambda r: model.init(r, enc, dec, dec), jax.random.PRNGKey(0))["params"]


_MODEL = Transformer(CFG)


@jax.jit
def _t5x_outputs(params, ref):
  """Everything reference.npz holds, computed from `params` (boxed OK) under jit."""
  variables = {"params": params}
  enc_t, dec_in, dec_t = (ref["encoder_input_tokens"], ref["decoder_input_tokens"],
                          ref["decoder_target_tokens"])
  weights = ref["decoder_loss_weights"]
  encoded = _MODEL.apply(variables, enc_t, method=_MODEL.encode)
  logits = _MODEL.apply(variables, enc_t, dec_in, dec_t)
  token_scores = losses.token_scores(logits, dec_t, weights)
  wl = losses.compute_weighted_cross_entropy(logits, dec_t, weights, z_loss=1e-4)
  mask = encoder_mask(enc_t)
  greedy, greedy_scores = decoding.predict(_MODEL, variables, encoded, mask, dec_in.shape[1])
  beams, beam_scores = decoding.predict(_MODEL, variables, encoded, mask, dec_in.shape[1],
                                        num_decodes=4, return_all_decodes=True)
  return {"encoder_output": encoded, "logits": logits, "score_batch": token_scores.sum(-1),
          "score_batch_token_scores": token_scores, "loss_fn_loss": wl.loss,
          "loss_fn_z_loss": wl.z_loss, "loss_fn_cross_ent_loss": wl.cross_ent_loss,
          "greedy_decode": greedy, "greedy_decode_scores": greedy_scores,
          "beam4_decodes": beams, "beam4_scores": beam_scores}


@pytest.mark.parametrize("path", [LEGACY, ORBAX], ids=["legacy", "orbax"])
def test_restored_checkpoint_reproduces_t5x(fixture, path):
  params_npz, ref = fixture
  params, report = restore_params(_template(CFG), path)
  assert len(report.restored) == 52 and not report.kept_from_template
  assert not report.unused_in_checkpoint and not report.cast
  inputs = {k: ref[k] for k in ("encoder_input_tokens", "decoder_input_tokens",
                                "decoder_target_tokens", "decoder_loss_weights")}
  out = jax.device_get(_t5x_outputs(params, inputs))
  diffs = {}
  for key, got in out.items():
    want = ref[key]
    assert got.shape == want.shape, key
    if np.issubdtype(want.dtype, np.integer):
      np.testing.assert_array_equal(got, want, err_msg=key)  # tokens exactly
    else:
      diffs[key] = float(np.abs(got - want).max())
      np.testing.assert_allclose(got, want, atol=1e-5, rtol=0, err_msg=key)
  print(f"max |diff| vs T5X ({path.parent.name}):", diffs)


@pytest.mark.parametrize("path", [
    LEGACY, LEGACY / "checkpoint", LEGACY.parent,
    ORBAX, ORBAX / "state", ORBAX.parent,
], ids=["legacy-dir", "legacy-file", "legacy-model-dir", "orbax-dir", "orbax-state",
        "orbax-model-dir"])
def test_load_is_bitwise_equal_for_every_path_form(fixture, path):
  params_npz, _ = fixture
  loaded = load_t5x_checkpoint(path)
  assert set(loaded) == set(params_npz)
  for k, v in params_npz.items():
    assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v), k
  step = load_t5x_checkpoint(path, prefix="state")["step"]
  assert int(step) == 0


def _write_legacy(directory: Path, arrays: dict, chunks=(8, 8), gcs_form=(), inline=()):
  """A legacy T5X checkpoint written like t5x does: msgpack + one zarr dir per array."""
  directory.mkdir(parents=True)
  target: dict = {}
  for name, arr in arrays.items():
    node = target
    *parents, leaf = name.split("/")
    for part in parents:
      node = node.setdefault(part, {})
    dotted = "target." + name.replace("/", ".")
    if name in inline:
      node[leaf] = msgpack.ExtType(1, msgpack.packb([list(arr.shape), arr.dtype.name,
                                                     arr.tobytes()]))
      continue
    chunk = [min(c, s) for c, s in zip(chunks, arr.shape)]
    meta = {"shape": list(arr.shape), "chunks": chunk, "dtype": "<f4",
            "compressor": {"id": "gzip", "level": 1}}
    store = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(directory /
                     dotted)}, "metadata": meta}, create=True).result()
    store.write(arr).result()
    if name in gcs_form:
      node[leaf] = {"driver": "zarr", "kvstore": {"driver": "gcs", "bucket": "t5x-dummy-bucket"},
                    "path": dotted, "metadata": meta}
    else:
      node[leaf] = {"driver": "zarr", "dtype": "float32", "metadata": meta,
                    "kvstore": {"driver": "file", "path": dotted + "/"}}
  payload = {"version": 3, "optimizer": {"target": target, "state": {"step": 7}}}
  (directory / "checkpoint").write_bytes(msgpack.packb(payload))


def test_multichunk_gcs_form_and_inline_arrays(fixture, tmp_path):
  params_npz, _ = fixture
  names = sorted(params_npz)
  gcs = set(names[::2])
  inline = {"encoder/encoder_norm/scale", "decoder/decoder_norm/scale"}
  ckpt = tmp_path / "model" / "checkpoint_7"
  _write_legacy(ckpt, params_npz, chunks=(8, 8), gcs_form=gcs - inline, inline=inline)
  emb_dir = ckpt / "target.token_embedder.embedding"
  assert len([p for p in emb_dir.iterdir() if not p.name.startswith(".")]) == 12 * 4  # chunks
  loaded = load_t5x_checkpoint(tmp_path / "model")
  assert set(loaded) == set(params_npz)
  for k, v in params_npz.items():
    np.testing.assert_array_equal(loaded[k], v, err_msg=k)


def test_partial_restore_keeps_fresh_lora_and_adapter(fixture):
  params_npz, ref = fixture
  template = nn.meta.unbox(_template(T5Config.tiny(vocab_size=96, lora_rank=2)))
  template = jax.tree_util.tree_map(lambda s: jnp.full(s.shape, 0.5, s.dtype), template)
  adapter = jnp.arange(6.0).reshape(2, 3)
  template = {**template, "adapter": {"dense": {"kernel": adapter}}}
  params, report = restore_params(template, LEGACY)
  lora = sorted(k for k in report.kept_from_template if k.endswith(("lora_a", "lora_b")))
  # 2 enc layers x (4 attn + 3 mlp) + 2 dec layers x (8 attn + 3 mlp) dense layers, 2 leaves each
  assert len(lora) == 2 * (2 * 7 + 2 * 11)
  assert "adapter/dense/kernel" in report.kept_from_template
  assert set(report.kept_from_template) == set(lora) | {"adapter/dense/kernel"}
  assert str(report).startswith("restored 52 params from ")
  assert "73 not in the checkpoint keep their fresh init: " in str(report)
  assert "adapter/dense/kernel" in str(report)
  assert len(report.restored) == 52
  np.testing.assert_array_equal(params["adapter"]["dense"]["kernel"], adapter)
  q = params["encoder"]["layers_0"]["attention"]["query"]
  np.testing.assert_array_equal(q["kernel"], params_npz["encoder/layers_0/attention/query/kernel"])
  np.testing.assert_array_equal(q["lora_a"], np.full((32, 2), 0.5, np.float32))
  # Variables-dict form is accepted too.
  wrapped, report2 = restore_params({"params": template}, LEGACY)
  assert set(wrapped) == {"params"} and report2.restored == report.restored


def test_shape_mismatch_names_param_and_shapes(fixture):
  with pytest.raises(CheckpointError, match=r"Shape mismatch for 2 param\(s\)") as err:
    restore_params(_template(T5Config.tiny(vocab_size=100)), ORBAX)
  assert "'token_embedder/embedding': model expects (100, 32), checkpoint has (96, 32)" in str(
      err.value)
  assert "'decoder/logits_dense/kernel': model expects (32, 100), checkpoint has (32, 96)" in str(
      err.value)


def test_other_architecture_is_a_clear_error(fixture):
  with pytest.raises(CheckpointError, match=r"not of this model's architecture.*Layer counts "
                     r"differ: model encoder=3 decoder=2, checkpoint encoder=2 decoder=2"):
    restore_params(_template(T5Config.tiny(vocab_size=96, num_encoder_layers=3)), LEGACY)
  with pytest.raises(CheckpointError, match=r"checkpoint encoder=2 decoder=2.*not in the model"):
    restore_params(_template(T5Config.tiny(vocab_size=96, num_decoder_layers=1)), LEGACY)
  tied = _template(T5Config.tiny(vocab_size=96, logits_via_embedding=True))
  with pytest.raises(CheckpointError, match="decoder/logits_dense/kernel"):
    restore_params(tied, LEGACY)
  with pytest.raises(CheckpointError, match="template has no T5 params"):
    restore_params({"adapter": {"w": jnp.zeros(3)}}, LEGACY)


def _writable_copy(src: Path, dst: Path) -> Path:
  """Copies a (read-only) fixture dir so the test may damage it."""
  shutil.copytree(src, dst)
  for p in [dst, *dst.rglob("*")]:
    p.chmod(0o755 if p.is_dir() else 0o644)
  return dst


def test_missing_and_corrupt_checkpoints(fixture, tmp_path):
  with pytest.raises(CheckpointError, match="does not exist"):
    load_t5x_checkpoint(tmp_path / "nope")
  (tmp_path / "empty").mkdir()
  with pytest.raises(CheckpointError, match="No T5X checkpoint found"):
    load_t5x_checkpoint(tmp_path / "empty")
  bad = tmp_path / "bad_msgpack"
  bad.mkdir()
  (bad / "checkpoint").write_bytes(b"\xc1\xc1 not msgpack")
  with pytest.raises(CheckpointError, match=r"bad_msgpack/checkpoint: not a valid T5X msgpack"):
    load_t5x_checkpoint(bad)
  # A damaged zarr chunk names the param.
  legacy = _writable_copy(LEGACY, tmp_path / "legacy")
  chunk = legacy / "target.encoder.layers_1.mlp.wo.kernel" / "0.0"
  chunk.write_bytes(b"garbage")
  with pytest.raises(CheckpointError, match="encoder/layers_1/mlp/wo/kernel"):
    load_t5x_checkpoint(legacy)
  shutil.rmtree(legacy / "target.decoder.decoder_norm.scale")
  with pytest.raises(CheckpointError, match="decoder/decoder_norm/scale"):
    load_t5x_checkpoint(legacy)
  # Damaged orbax OCDBT data files.
  orbax_bad = _writable_copy(ORBAX, tmp_path / "orbax_bad")
  for data in (orbax_bad / "state").rglob("d/*"):
    data.write_bytes(b"\0" * 64)
  with pytest.raises(CheckpointError, match=r"Could not read param '.*' from .*orbax_bad"):
    load_t5x_checkpoint(orbax_bad)
  # Broken orbax metadata.
  orbax = tmp_path / "orbax"
  (orbax / "state").mkdir(parents=True)
  (orbax / "state" / "_METADATA").write_text("{not json")
  with pytest.raises(CheckpointError, match="unreadable orbax metadata"):
    load_t5x_checkpoint(orbax)
  assert checkpoints.locate_checkpoint(orbax).format == "orbax"
