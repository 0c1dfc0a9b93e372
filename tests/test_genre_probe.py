"""The genre probe: its targets are the label rule's working, its loss trains the encoder, and
it leaves decoding unchanged."""
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import batch_support
import optax_support

from persoma import errors
from persoma.data import genres as genres_lib
from persoma.data.labels import LabelConfig, labels_from_stats
from persoma.models import genre_probe
from persoma.models.model import PersomaModel
from persoma.models.persoma_net import PersomaNetwork
from persoma.models.registry import get_adapter
from persoma.models.t5 import T5Config
from persoma.train import experiment

B, N, D, G = 3, 12, 8, genres_lib.NUM_GENRES
CFG = T5Config.tiny(vocab_size=96)
TUNED = LabelConfig(min_genre_count=2, like_threshold=3.65, dislike_threshold=2.75,
                    max_liked=3, max_disliked=4)


def _items(seed, b=B, n=N):
  rng = np.random.default_rng(seed)
  genres = (rng.random((b, n, G)) < rng.uniform(0.05, 0.4, (b, 1, G))).astype(np.float32)
  stars = rng.integers(0, 5, (b, n)).astype(np.int32)
  mask = (np.arange(n)[None] < rng.integers(0, n + 1, (b, 1))).astype(np.int32)
  mask[0] = 1
  return genres, stars, mask


@pytest.mark.parametrize("rule", [LabelConfig(), TUNED, LabelConfig(min_genre_count=1,
                                                                     max_liked=1)])
def test_targets_are_the_label_rules_working_on_the_shown_items(rule):
  """Liked / disliked classes equal labels_from_stats on the same items, ties and ranking
  included (integer stars make equal means common), over many random users."""
  targets_fn = jax.jit(lambda g, s, m: genre_probe.probe_targets(g, s, m, rule))
  compared = ranked = 0
  for seed in range(12):
    genres, stars, mask = _items(seed, b=16, n=30)
    t = jax.tree.map(np.asarray, targets_fn(genres, stars, mask))
    for u in range(16):
      shown = mask[u] > 0
      counts = genres[u][shown].sum(0)
      sums = (genres[u][shown] * (stars[u][shown] + 1.0)[:, None]).sum(0)
      want = labels_from_stats(sums, counts, rule)
      liked = tuple(genres_lib.GENRES[i] for i in np.flatnonzero(t["label"][u] == 1))
      disliked = tuple(genres_lib.GENRES[i] for i in np.flatnonzero(t["label"][u] == 2))
      assert set(liked) == set(want.liked) and set(disliked) == set(want.disliked), (seed, u)
      np.testing.assert_array_equal(t["qualify"][u], counts >= rule.min_genre_count)
      np.testing.assert_allclose(t["count"][u], counts)
      np.testing.assert_allclose(t["mean"][u], np.where(counts > 0, sums / np.maximum(counts, 1),
                                                        0), rtol=1e-6)
      compared += 1
      ranked += int(np.sum((counts >= rule.min_genre_count) &
                           (sums > rule.like_threshold * counts)) > rule.max_liked)
  assert compared == 192 and ranked > 10   # the ranking is exercised, not just thresholds


def test_whole_rule_gives_the_targets_of_rows_with_fewer_than_n_items():
  """With ``whole_rule`` a row whose mask is not full takes that rule's targets, a full row the
  main rule's, under jit."""
  both = jax.jit(lambda g, s, m: genre_probe.probe_targets(g, s, m, TUNED, LabelConfig()))
  whole = whole_rows = 0
  for seed in range(4):
    genres, stars, mask = _items(seed, b=16, n=30)
    mask[1:4] = 1  # full rows beside the random-length ones
    got = jax.tree.map(np.asarray, both(genres, stars, mask))
    full, label = (jax.tree.map(np.asarray, genre_probe.probe_targets(genres, stars, mask, r))
                   for r in (TUNED, LabelConfig()))
    for u in range(16):
      short = mask[u].sum() < 30
      want, other = (label, full) if short else (full, label)
      for k in ("qualify", "label", "count", "mean"):
        np.testing.assert_array_equal(got[k][u], want[k][u])
      whole_rows += short
      whole += short and not np.array_equal(want["label"][u], other["label"][u])
  assert whole_rows > 10 and whole > 0  # the two rules differ on some whole rows


def test_an_empty_history_has_no_qualifying_genre():
  genres, stars, mask = _items(0)
  t = genre_probe.probe_targets(genres, stars, np.zeros_like(mask), LabelConfig())
  assert not np.asarray(t["qualify"]).any() and not np.asarray(t["label"]).any()
  assert not np.asarray(t["mean"]).any()


def _batch(seed=0, targets=True):
  rng = np.random.default_rng(seed)
  genres, stars, mask = _items(seed)
  batch = batch_support.history_batch(rng, B, N, D, mask)
  if targets:
    batch.update(history_genres=genres, history_stars=stars)
  return batch


@pytest.fixture(scope="module")
def probed():
  adapter = get_adapter("mlp", input_dim=D, hidden_dim=8)
  net = PersomaNetwork(CFG, adapter=adapter, task_prompt_length=G + 1,
                       genre_probe=genre_probe.GenreProbe(rule=TUNED))
  plain_net = PersomaNetwork(CFG, adapter=adapter, task_prompt_length=G + 1)
  model = PersomaModel(net, probe_loss_weight=0.5)
  batch = _batch()
  params = nn.unbox(jax.jit(lambda r: model.get_initial_variables(
      r, {k: v.shape for k, v in batch.items()}))(jax.random.PRNGKey(0))["params"])
  return model, PersomaModel(plain_net), params, batch


def test_probe_reads_the_genre_positions_and_adds_its_weighted_loss(probed):
  model, plain, params, batch = probed
  assert params["genre_probe"]["head"]["kernel"].shape == (CFG.emb_dim, 5)
  plain_params = {k: v for k, v in params.items() if k != "genre_probe"}
  loss0, m0 = jax.jit(plain.loss_fn)(plain_params, batch, None)
  loss1, m1 = jax.jit(model.loss_fn)(params, batch, None)
  assert "probe_loss" not in m0 and float(m1["probe_loss"]) > 0
  np.testing.assert_allclose(loss1, loss0 + 0.5 * m1["probe_loss"], rtol=1e-5)
  np.testing.assert_allclose(m1["cross_ent_loss"], m0["cross_ent_loss"], rtol=1e-6)
  # the head reads the encoder at task-prompt positions N .. N+G-1 (after the N item tokens)
  _, inter = jax.jit(lambda p: model.network.apply(
      {"params": p}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
      batch["decoder_target_tokens"], batch["history_embeddings"], batch["history_mask"],
      mutable=["intermediates"]))(params)
  out = genre_probe.find_probe_outputs(inter)
  encoded = jax.jit(lambda p: model.network.apply(
      {"params": p}, batch["encoder_input_tokens"], batch["history_embeddings"],
      batch["history_mask"], method=PersomaNetwork.encode))(params)
  head = params["genre_probe"]["head"]
  np.testing.assert_allclose(out, encoded[:, N:N + G] @ head["kernel"] + head["bias"],
                             rtol=1e-5, atol=1e-6)
  # its gradient reaches the encoder, the task prompt and the adapter; decoding is unchanged
  grads = jax.jit(jax.grad(lambda p: model.loss_fn(p, batch, None)[0] -
                           plain.loss_fn({k: v for k, v in p.items() if k != "genre_probe"},
                                         batch, None)[0]))(params)
  for path in (("genre_probe", "head"), ("adapter", "layers_0"),
               ("encoder", "layers_0", "mlp", "wo")):
    leaf = grads
    for k in path:
      leaf = leaf[k]
    assert np.abs(np.asarray(leaf["kernel"])).sum() > 0, path
  assert np.abs(np.asarray(grads["task_prompt"]["prompt"])).sum() > 0
  assert np.abs(np.asarray(grads["decoder"]["logits_dense"]["kernel"])).sum() == 0
  t1, _ = jax.jit(model.predict_batch_with_aux)(params, batch)
  t0, _ = jax.jit(plain.predict_batch_with_aux)(plain_params, _batch(targets=False))
  np.testing.assert_array_equal(t1, t0)


def test_model_loss_reads_the_probes_whole_rule(probed):
  """Same parameters: a probe with ``whole_rule`` scores the short rows under it."""
  model, _, params, batch = probed
  assert (batch["history_mask"].sum(1) < N).any()
  whole_net = model.network.clone(genre_probe=genre_probe.GenreProbe(rule=TUNED,
                                                                      whole_rule=LabelConfig()))
  whole = PersomaModel(whole_net, probe_loss_weight=0.5)
  _, m0 = jax.jit(model.loss_fn)(params, batch, None)
  _, m1 = jax.jit(whole.loss_fn)(params, batch, None)
  _, inter = jax.jit(lambda p: model.network.apply(
      {"params": p}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
      batch["decoder_target_tokens"], batch["history_embeddings"], batch["history_mask"],
      mutable=["intermediates"]))(params)
  want = genre_probe.probe_loss(genre_probe.find_probe_outputs(inter), genre_probe.probe_targets(
      batch["history_genres"], batch["history_stars"], batch["history_mask"], TUNED,
      LabelConfig()))
  np.testing.assert_allclose(m1["probe_loss"], want, rtol=1e-5)
  assert abs(float(m1["probe_loss"]) - float(m0["probe_loss"])) > 1e-4


def test_probe_head_learns_the_rule_from_encoder_like_features():
  """Fed per-genre count and mean features, a few optax steps fit the head to the targets."""
  genres, stars, mask = _items(3, b=64, n=30)
  t = genre_probe.probe_targets(genres, stars, mask, TUNED)
  feats = jnp.stack([t["count"] / 10, t["mean"] / 5, (t["mean"] > 3.65) * 1.0,
                     (t["mean"] < 2.75) * 1.0, t["qualify"] * 1.0], -1)      # [B, G, 5]
  feats = jnp.concatenate([feats, jnp.zeros(feats.shape[:2] + (3,))], -1)    # H = 8
  probe = genre_probe.GenreProbe(rule=TUNED)
  variables = probe.init(jax.random.PRNGKey(0), feats)
  _, first, last = optax_support.minimize(
      lambda v: genre_probe.probe_loss(probe.apply(v, feats), t), variables, 5e-2, 200)
  assert last < 0.3 * first

def test_bad_settings_are_clear_errors(probed):
  model, plain, params, _ = probed
  with pytest.raises(ValueError, match="probe_loss_weight=0.5.*history_genres.*item_targets"):
    model.loss_fn(params, _batch(targets=False), None)
  with pytest.raises(ValueError, match="reads 19 task-prompt positions.*task_prompt_length=5"):
    PersomaNetwork(CFG, adapter=get_adapter("mlp", input_dim=D), task_prompt_length=5,
                   genre_probe=genre_probe.GenreProbe())
  with pytest.raises(ValueError, match="probe_loss_weight=1.0 needs.*genre_probe"):
    PersomaModel(plain.network, probe_loss_weight=1.0)
  with pytest.raises(ValueError, match=r"\[B, 19, H\]"):
    genre_probe.GenreProbe().init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 8)))
  with pytest.raises(errors.ConfigError, match="TASK_PROMPT_LENGTH=10"):
    experiment.ModelSpec(probe_loss_weight=1.0, task_prompt_length=10).validate()
  with pytest.raises(errors.ConfigError, match="probe_rule must be a labels.LabelConfig"):
    experiment.ModelSpec(probe_loss_weight=1.0, probe_rule={"a": 1}).validate()
  with pytest.raises(errors.ConfigError, match="probe_whole_rule must be a labels.LabelConfig"):
    experiment.ModelSpec(probe_loss_weight=1.0, probe_whole_rule=3).validate()
  with pytest.raises(errors.ConfigError, match="probe_whole_rule is set but probe_loss_weight"):
    experiment.ModelSpec(probe_whole_rule=LabelConfig()).validate()
  assert genre_probe.find_probe_outputs({}) is None


def test_model_spec_builds_the_probe_with_its_rule():
  spec = experiment.ModelSpec(size="tiny", adapter="mlp", probe_loss_weight=2.0,
                              probe_rule=TUNED, adapter_fields={"mlp": {"hidden_dim": 8}})
  spec.validate()
  model = spec.build(vocab_size=90, input_dim=D)
  assert model.probe_loss_weight == 2.0 and model.network.genre_probe.rule == TUNED
  assert model.network.genre_probe.whole_rule is None
  whole = dataclasses.replace(spec, probe_whole_rule=LabelConfig(max_liked=2)).build(90, D)
  assert whole.network.genre_probe.whole_rule == LabelConfig(max_liked=2)
  assert experiment.ModelSpec(size="tiny").build(90, D).network.genre_probe is None
  default = experiment.ModelSpec(size="tiny", probe_loss_weight=1.0).build(90, D)
  assert default.network.genre_probe.rule == LabelConfig()
