"""PersomaModel's T5X interface: matches T5X numbers on the tiny fixture; PERSOMA consistency."""
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from persoma.models.model import PersomaModel
from persoma.models.persoma_net import PersomaNetwork
from persoma.models.registry import get_adapter
from persoma.models.t5 import T5Config

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE = SHARED / "fixtures" / "t5x_tiny"
CFG = T5Config.tiny(vocab_size=96)
TEXT_KEYS = ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
             "decoder_loss_weights")


@pytest.fixture(scope="module")
def fixture():
  if not (FIXTURE / "params.npz").exists():
    pytest.skip(f"T5X fixture absent: {FIXTURE} (see ../shared/fixtures/t5x_tiny/README.md)")
  raw = np.load(FIXTURE / "params.npz")
  params = traverse_util.unflatten_dict({tuple(k.split("/")): jnp.asarray(v)
                                         for k, v in raw.items()})
  ref = dict(np.load(FIXTURE / "reference.npz"))
  return params, ref


def test_text_baseline_matches_t5x_loss_scores_and_decodes(fixture):
  params, ref = fixture
  model = PersomaModel(PersomaNetwork(CFG, composition="text", task_prompt_length=0))
  batch = {k: ref[k] for k in TEXT_KEYS}
  loss, metrics = jax.jit(model.loss_fn)(params, batch, None)
  np.testing.assert_allclose(loss, ref["loss_fn_loss"], rtol=1e-6)
  np.testing.assert_allclose(metrics["cross_ent_loss"], ref["loss_fn_cross_ent_loss"], rtol=1e-6)
  np.testing.assert_allclose(metrics["z_loss"], ref["loss_fn_z_loss"], rtol=1e-5)
  scores, inter = jax.jit(lambda p, b: model.score_batch(p, b, return_intermediates=True))(
      params, batch)
  np.testing.assert_allclose(scores, ref["score_batch"], atol=1e-5)
  np.testing.assert_allclose(inter["token_scores"], ref["score_batch_token_scores"], atol=1e-5)
  tokens, aux = jax.jit(model.predict_batch_with_aux)(params, batch)
  np.testing.assert_array_equal(tokens, ref["greedy_decode"])
  np.testing.assert_allclose(aux["scores"], ref["greedy_decode_scores"], atol=1e-5)
  # (beam search vs T5X's beam4 reference is covered by the T5 decoding tests)


def test_t5x_checkpoint_params_load_unchanged_into_persoma(fixture):
  """T5X params + a fresh adapter: with an all-masked history and no task prompt the PERSOMA
  network scores exactly like T5X (the T5 tree sits at the top level, unchanged)."""
  params, ref = fixture
  net = PersomaNetwork(CFG, adapter=get_adapter("mlp", input_dim=8, hidden_dim=8),
                       task_prompt_length=0)
  model = PersomaModel(net)
  batch = {k: ref[k] for k in TEXT_KEYS}
  b = batch["encoder_input_tokens"].shape[0]
  batch.update(history_embeddings=np.ones((b, 3, 8), np.float32),
               history_mask=np.zeros((b, 3), np.int32))
  shapes = {k: v.shape for k, v in batch.items()}
  abstract = nn.unbox(jax.eval_shape(lambda r: model.get_initial_variables(r, shapes),
                                     jax.random.PRNGKey(0))["params"])
  assert set(abstract) == set(params) | {"adapter"}
  full = dict(params, adapter=_random_params(abstract["adapter"]))
  scores = jax.jit(model.score_batch)(full, batch)
  np.testing.assert_allclose(scores, ref["score_batch"], atol=1e-5)


def _persoma_batch(b=2, l=6, t=5, n=4, d=8, seed=0):
  rng = np.random.default_rng(seed)
  tgt = rng.integers(2, 96, (b, t)).astype(np.int32)
  tgt[0, 3], tgt[0, 4:] = 1, 0
  return {
      "encoder_input_tokens": rng.integers(2, 96, (b, l)).astype(np.int32),
      "decoder_input_tokens": np.concatenate([np.zeros((b, 1), np.int32), tgt[:, :-1]], 1),
      "decoder_target_tokens": tgt,
      "decoder_loss_weights": (tgt > 0).astype(np.float32),
      "history_embeddings": rng.normal(size=(b, n, d)).astype(np.float32),
      "history_mask": np.ones((b, n), np.int32),
  }


def _random_params(abstract, seed=0):
  """Deterministic numpy-filled params of the given shapes (no slow jitted init on CPU)."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda a: jnp.asarray((rng.normal(size=a.shape) / np.sqrt(a.shape[0]) if len(a.shape) > 1
                             else 1.0 + 0.1 * rng.normal(size=a.shape)).astype(np.float32)),
      abstract)


@pytest.fixture(scope="module")
def persoma():
  cfg = CFG.replace(dropout_rate=0.2)
  net = PersomaNetwork(cfg, adapter=get_adapter("mlp", input_dim=8, hidden_dim=8),
                       task_prompt_length=3)
  model = PersomaModel(net)
  batch = _persoma_batch()
  shapes = {k: v.shape for k, v in batch.items()}
  types = {k: v.dtype for k, v in batch.items()}
  variables = jax.eval_shape(lambda r: model.get_initial_variables(r, shapes, types),
                             jax.random.PRNGKey(0))
  return model, _random_params(nn.unbox(variables["params"])), batch, variables


def test_initial_variables_boxed_with_adapter_and_prompt(persoma):
  model, params, batch, variables = persoma
  assert isinstance(variables["params"]["task_prompt"]["prompt"], nn.LogicallyPartitioned)
  assert variables["params"]["task_prompt"]["prompt"].names == ("prompt", "embed")
  assert {"adapter", "task_prompt", "encoder", "decoder", "token_embedder"} <= set(params)
  with pytest.raises(ValueError, match="input_shapes lacks 'history_embeddings'"):
    model.get_initial_variables(jax.random.PRNGKey(0), {"encoder_input_tokens": (2, 3),
                                                        "decoder_input_tokens": (2, 3)})


def test_loss_score_and_decode_are_consistent(persoma):
  model, params, batch, _ = persoma
  loss_fn = jax.jit(model.loss_fn)
  loss, metrics = loss_fn(params, batch, None)
  scores = jax.jit(model.score_batch)(params, batch)
  # loss = CE + z_loss, CE = -sum(score_batch) (T5X semantics, unnormalised sums)
  np.testing.assert_allclose(metrics["cross_ent_loss"], -np.sum(scores), rtol=1e-5)
  np.testing.assert_allclose(loss, metrics["cross_ent_loss"] + metrics["z_loss"], rtol=1e-6)
  assert metrics["num_tokens"] == batch["decoder_loss_weights"].sum()
  norm = PersomaModel(model.network, loss_normalizing_factor="NUM_REAL_TARGET_TOKENS")
  assert float(norm._normalizer(batch)) == batch["decoder_loss_weights"].sum()

  # greedy decode score == score_batch of the decoded sequence (teacher forced, up to EOS)
  tokens, aux = jax.jit(model.predict_batch_with_aux)(params, batch)
  tokens = np.asarray(tokens)
  assert tokens.shape == batch["decoder_target_tokens"].shape
  weights = np.ones(tokens.shape, np.float32)
  for i, row in enumerate(tokens):
    eos = np.where(row == 1)[0]
    if eos.size:
      weights[i, eos[0] + 1:] = 0.0
  decoded = dict(batch, decoder_target_tokens=np.where(weights > 0, tokens, 0).astype(np.int32),
                 decoder_input_tokens=np.concatenate([np.zeros((2, 1), np.int32),
                                                      tokens[:, :-1]], 1),
                 decoder_loss_weights=weights)
  # (a generated 0 would be masked as padding when teacher forcing; T5X does the same)
  if np.all(tokens[weights > 0] > 0):
    rescored = jax.jit(model.score_batch)(params, decoded)
    np.testing.assert_allclose(rescored, aux["scores"], atol=1e-4)


@pytest.mark.slow
def test_dropout_rng_and_beam_search(persoma):
  """Slow (two more compiles): dropout only with an rng; beam decodes sorted best-last."""
  model, params, batch, _ = persoma
  loss_fn = jax.jit(model.loss_fn)
  l1, _ = loss_fn(params, batch, jax.random.PRNGKey(1))
  l2, _ = loss_fn(params, batch, jax.random.PRNGKey(2))
  loss, _ = model.loss_fn(params, batch, None)
  assert float(l1) != float(l2) and float(l1) != float(loss)
  beams, baux = jax.jit(lambda p, b: model.predict_batch_with_aux(
      p, b, num_decodes=3, return_all_decodes=True))(params, batch)
  assert beams.shape == (2, 3, 5) and baux["scores"].shape == (2, 3)
  assert np.all(np.diff(np.asarray(baux["scores"]), axis=1) >= 0)   # ascending, best last
  best = jax.jit(lambda p, b: model.predict_batch(p, b, num_decodes=3))(params, batch)
  np.testing.assert_array_equal(best, beams[:, -1])


@pytest.mark.slow
def test_temperature_samples_are_seeded_sorted_and_scored_as_the_model_scores_them(persoma):
  """Slow (one more compile): K samples per row from `rng`, best last, scores = log-likelihood."""
  model, params, batch, _ = persoma
  sample = jax.jit(lambda p, b, r: model.predict_batch_with_aux(
      p, b, r, num_decodes=6, return_all_decodes=True,
      decoder_params={"decode_method": "sample", "temperature": 1.5}))
  tokens, aux = sample(params, batch, jax.random.PRNGKey(3))
  again, _ = sample(params, batch, jax.random.PRNGKey(3))
  other, _ = sample(params, batch, jax.random.PRNGKey(4))
  assert tokens.shape == (2, 6, 5) and aux["scores"].shape == (2, 6)
  np.testing.assert_array_equal(tokens, again)
  assert not np.array_equal(tokens, other)  # an untrained model at T=1.5 is near uniform
  scores = np.asarray(aux["scores"])
  assert np.all(np.diff(scores, axis=1) >= 0)  # ascending, most likely last
  # Each sample's score is the model's own log-likelihood of it (unscaled by the temperature).
  flat = np.asarray(tokens).reshape(12, 5)
  ended = np.cumsum(flat == model.eos_id, axis=1)
  weights = ((ended == 0) | ((ended == 1) & (flat == model.eos_id))).astype(np.float32)
  # Rows with a generated 0 are left out: teacher forcing would mask it as padding (as T5X).
  keep = np.flatnonzero(np.all((flat > 0) | (weights == 0), axis=1))
  assert keep.size >= 6, f"too few rows without a generated 0: {keep}"
  rep = {k: np.repeat(np.asarray(v), 6, axis=0)[keep] for k, v in batch.items()}
  rep.update(decoder_target_tokens=np.where(weights > 0, flat, 0)[keep].astype(np.int32),
             decoder_input_tokens=np.concatenate([np.zeros((12, 1), np.int32), flat[:, :-1]],
                                                 1)[keep],
             decoder_loss_weights=weights[keep])
  np.testing.assert_allclose(jax.jit(model.score_batch)(params, rep), scores.reshape(-1)[keep],
                             atol=1e-4)


def test_bad_batch_and_options(persoma):
  model, params, batch, _ = persoma
  no_hist = {k: v for k, v in batch.items() if not k.startswith("history")}
  with pytest.raises(ValueError, match=r"batch lacks \['history_embeddings', 'history_mask'\]"):
    model.loss_fn(params, no_hist, None)
  with pytest.raises(ValueError, match="loss_normalizing_factor='tokens'"):
    PersomaModel(model.network, loss_normalizing_factor="tokens")
  with pytest.raises(ValueError, match=r"unknown decoder_params \['top_p'\]"):
    model.predict_batch_with_aux(params, batch, decoder_params={"top_p": 0.9})
  wide = dict(batch, history_embeddings=np.zeros((2, 4, 9), np.float32))
  with pytest.raises(ValueError, match=r"width D=9 but MLPAdapter.input_dim=8"):
    model.score_batch(params, wide)
