"""GenreStatsAdapter: the per-genre features, the item-head loss, and the model's use of it
(also by the MLP adapter's optional item heads)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import batch_support
import optax_support

from persoma.models import genre_stats
from persoma.models.model import PersomaModel
from persoma.models.persoma_net import PersomaNetwork
from persoma.models.registry import get_adapter
from persoma.models.t5 import T5Config

B, N, D, G = 2, 5, 8, 4
CFG = T5Config.tiny(vocab_size=96)


def test_features_are_log_counts_total_and_mean_star():
  hist = jnp.zeros((1, 2, 5)).at[0, 0, 2].set(1.0).at[0, 0, 4].set(2.0)  # 3-star once, 5 twice
  f = np.asarray(genre_stats.genre_features(hist))
  assert f.shape == (1, 2, 7)
  np.testing.assert_allclose(f[0, 0, :5], np.log1p([0, 0, 1, 0, 2]), rtol=1e-6)
  np.testing.assert_allclose(f[0, 0, 5], np.log1p(3.0), rtol=1e-6)
  np.testing.assert_allclose(f[0, 0, 6], (3 + 2 * 5) / 3 / 5, rtol=1e-6)
  np.testing.assert_array_equal(f[0, 1], 0.0)  # a genre with no movie: zeros, not NaN


def test_item_loss_is_mean_over_real_items_and_ignores_padding():
  rng = np.random.default_rng(0)
  gl = rng.normal(size=(B, N, G)).astype(np.float32)
  sl = rng.normal(size=(B, N, 5)).astype(np.float32)
  genres = (rng.random((B, N, G)) > 0.5).astype(np.float32)
  stars = rng.integers(0, 5, (B, N))
  mask = np.ones((B, N), np.int32)
  mask[1, 2:] = 0
  loss = genre_stats.item_loss(gl, sl, genres, stars, mask)
  per = (optax.sigmoid_binary_cross_entropy(gl, genres).mean(-1)
         + optax.softmax_cross_entropy_with_integer_labels(sl, stars))
  np.testing.assert_allclose(loss, np.asarray(per)[mask > 0].mean(), rtol=1e-5)
  gl2 = gl.copy()
  gl2[1, 3] += 5.0  # a padded item's logits do not count
  np.testing.assert_allclose(genre_stats.item_loss(gl2, sl, genres, stars, mask), loss, rtol=1e-6)


def _batch(seed=0, targets=True):
  rng = np.random.default_rng(seed)
  batch = batch_support.history_batch(rng, B, N, D)
  if targets:
    batch["history_genres"] = (rng.random((B, N, G)) > 0.6).astype(np.float32)
    batch["history_stars"] = rng.integers(0, 5, (B, N)).astype(np.int32)
  return batch


@pytest.fixture(scope="module")
def models():
  adapter = get_adapter("genre_stats", input_dim=D, hidden_dim=16, num_genres=G,
                        genre_embed_dim=4)
  net = PersomaNetwork(CFG, adapter=adapter, task_prompt_length=2)
  plain, weighted = PersomaModel(net), PersomaModel(net, item_loss_weight=0.5)
  batch = _batch()
  params = nn.unbox(jax.jit(lambda r: plain.get_initial_variables(
      r, {k: v.shape for k, v in batch.items()}))(jax.random.PRNGKey(0))["params"])
  return plain, weighted, params, batch


def test_model_adds_the_weighted_item_loss(models):
  plain, weighted, params, batch = models
  assert plain.network.num_prefix_tokens(N) == G + 2
  loss0, m0 = jax.jit(plain.loss_fn)(params, batch, None)
  loss1, m1 = jax.jit(weighted.loss_fn)(params, batch, None)
  assert "item_loss" not in m0 and float(m1["item_loss"]) > 0
  np.testing.assert_allclose(loss1, loss0 + 0.5 * m1["item_loss"], rtol=1e-5)
  np.testing.assert_allclose(m1["cross_ent_loss"], m0["cross_ent_loss"], rtol=1e-6)
  # the item loss trains the item heads: its gradient reaches them
  grads = jax.jit(jax.grad(lambda p: weighted.loss_fn(p, batch, None)[0] -
                           plain.loss_fn(p, batch, None)[0]))(params)
  assert np.abs(np.asarray(grads["adapter"]["item_genres"]["kernel"])).sum() > 0
  assert np.abs(np.asarray(grads["adapter"]["item_stars"]["kernel"])).sum() > 0
  assert np.abs(np.asarray(grads["adapter"]["out"]["kernel"])).sum() == 0
  # decoding ignores the item targets
  t1, _ = jax.jit(weighted.predict_batch_with_aux)(params, batch)
  t0, _ = jax.jit(plain.predict_batch_with_aux)(params, _batch(targets=False))
  np.testing.assert_array_equal(t1, t0)


def test_item_heads_learn_genres_and_stars_from_the_item_loss():
  """A few optax steps on the item loss alone fit item targets that the embeddings determine."""
  rng = np.random.default_rng(1)
  emb = rng.normal(size=(16, N, D)).astype(np.float32)
  genres = (emb[..., :G] > 0).astype(np.float32)
  stars = np.digitize(emb[..., G], [-0.8, -0.25, 0.25, 0.8]).astype(np.int32)
  mask = np.ones((16, N), np.int32)
  adapter = get_adapter("genre_stats", input_dim=D, hidden_dim=32, num_genres=G, d_model=8)
  variables = adapter.init(jax.random.PRNGKey(0), emb, mask)

  def loss_fn(v):
    _, inter = adapter.apply(v, emb, mask, mutable=["intermediates"])
    return genre_stats.item_loss(*genre_stats.find_item_logits(inter), genres, stars, mask)

  _, first, last = optax_support.minimize(loss_fn, variables, 3e-2, 150)
  assert last < 0.25 * first

def test_bad_settings_are_clear_errors(models):
  plain, weighted, params, _ = models
  with pytest.raises(ValueError, match="history_genres.*item_targets = True"):
    weighted.loss_fn(params, _batch(targets=False), None)
  mlp = PersomaNetwork(CFG, adapter=get_adapter("mlp", input_dim=D, hidden_dim=8))
  with pytest.raises(ValueError, match="needs an adapter with item heads.*MLPAdapter"):
    PersomaModel(mlp, item_loss_weight=1.0)
  with pytest.raises(ValueError, match="item_loss_weight=-1"):
    PersomaModel(plain.network, item_loss_weight=-1.0)
  with pytest.raises(ValueError, match="genre_embed_dim"):
    bad = get_adapter("genre_stats", input_dim=D, d_model=8, genre_embed_dim=0)
    bad.init(jax.random.PRNGKey(0), jnp.zeros((1, 2, D)), jnp.ones((1, 2), jnp.int32))
  assert genre_stats.find_item_logits({}) is None


def test_genre_name_anchors_add_the_mean_name_embedding_to_each_token():
  table = jnp.asarray(np.random.default_rng(2).normal(size=(10, 8)), jnp.float32)
  ids = ((3,), (4, 6), (1,), (7, 8, 9))
  names = np.asarray(genre_stats.genre_name_embeddings(table, ids))
  np.testing.assert_allclose(names[1], (table[4] + table[6]) / 2, rtol=1e-6)
  np.testing.assert_allclose(names[3], table[7:10].mean(0), rtol=1e-5)
  emb = jnp.asarray(np.random.default_rng(3).normal(size=(B, N, D)), jnp.float32)
  mask = jnp.ones((B, N), jnp.int32)
  plain = get_adapter("genre_stats", input_dim=D, d_model=8, hidden_dim=16, num_genres=G)
  named = plain.clone(genre_token_ids=ids)
  variables = plain.init(jax.random.PRNGKey(0), emb, mask)
  out = jax.jit(plain.apply)(variables, emb, mask)[0]
  out_named = jax.jit(lambda v, e, m, t: named.apply(v, e, m, token_embedding=t))(
      variables, emb, mask, table)[0]
  np.testing.assert_allclose(out_named - out, np.broadcast_to(names, out.shape), atol=1e-5)
  with pytest.raises(ValueError, match="no token_embedding"):
    named.apply(variables, emb, mask)
  with pytest.raises(ValueError, match="each of the 4 genres"):
    plain.clone(genre_token_ids=ids[:3]).apply(variables, emb, mask, token_embedding=table)


def test_network_passes_its_token_embedder_to_named_genre_tokens():
  adapter = get_adapter("genre_stats", input_dim=D, hidden_dim=16, num_genres=G,
                        genre_token_ids=((5,), (6, 7), (8,), (9,)))
  model = PersomaModel(PersomaNetwork(CFG, adapter=adapter, task_prompt_length=2),
                       item_loss_weight=1.0)
  batch = _batch()
  params = nn.unbox(jax.jit(lambda r: model.get_initial_variables(
      r, {k: v.shape for k, v in batch.items()}))(jax.random.PRNGKey(0))["params"])
  loss, _ = jax.jit(model.loss_fn)(params, batch, None)
  # the genre tokens move with the token embedder rows of the names
  bumped = jax.tree_util.tree_map(lambda x: x, params)
  bumped["token_embedder"]["embedding"] = params["token_embedder"]["embedding"].at[6].add(1.0)
  assert not np.isclose(float(jax.jit(model.loss_fn)(bumped, batch, None)[0]), float(loss))


def test_model_spec_fills_genre_ids_from_the_vocabulary():
  from persoma.data import genres as genres_lib
  from persoma.train import experiment

  class Vocab:
    def encode(self, text):
      return [len(text), 2 + len(text) % 3]

  spec = experiment.ModelSpec(size="tiny", adapter="genre_stats", genre_name_tokens=True,
                              item_loss_weight=1.0)
  model = spec.build(96, D, Vocab())
  assert model.network.adapter.genre_token_ids == tuple(
      (len(g), 2 + len(g) % 3) for g in genres_lib.GENRES)
  with pytest.raises(ValueError, match="genre_name_tokens needs adapter='genre_stats'"):
    experiment.ModelSpec(size="tiny", adapter="mlp", genre_name_tokens=True).build(96, D, Vocab())


def test_mlp_item_heads_supervise_its_tokens_without_changing_them():
  """``MLPAdapter(item_heads=True)``: same prompt tokens as the plain MLP with the same layers,
  item logits ``[B, N, G]`` / ``[B, N, 5]`` for the model's item loss, whose gradient reaches
  both the heads and the token layers."""
  kw = dict(input_dim=D, hidden_dim=8, num_genres=G)
  headed = get_adapter("mlp", item_heads=True, **kw)
  net = PersomaNetwork(CFG, adapter=headed, task_prompt_length=2)
  plain_net = PersomaNetwork(CFG, adapter=get_adapter("mlp", **kw), task_prompt_length=2)
  weighted = PersomaModel(net, item_loss_weight=0.5)
  batch = _batch()
  params = nn.unbox(jax.jit(lambda r: weighted.get_initial_variables(
      r, {k: v.shape for k, v in batch.items()}))(jax.random.PRNGKey(0))["params"])
  ad = params["adapter"]
  assert ad["item_genre_head"]["kernel"].shape == (CFG.emb_dim, G)
  assert ad["item_star_head"]["kernel"].shape == (CFG.emb_dim, 5)
  # without the heads' params the plain MLP computes the same loss: the tokens are unchanged
  plain_params = {**params, "adapter": {k: v for k, v in ad.items() if "item_" not in k}}
  loss_plain, _ = jax.jit(PersomaModel(plain_net).loss_fn)(plain_params, batch, None)
  loss, metrics = jax.jit(weighted.loss_fn)(params, batch, None)
  assert float(metrics["item_loss"]) > 0
  np.testing.assert_allclose(loss, loss_plain + 0.5 * metrics["item_loss"], rtol=1e-5)
  _, inter = jax.jit(lambda p: net.adapter.apply(
      {"params": p}, batch["history_embeddings"], batch["history_mask"],
      mutable=["intermediates"]))(ad)
  gl, sl = genre_stats.find_item_logits(inter)
  assert gl.shape == (B, N, G) and sl.shape == (B, N, 5)
  grads = jax.jit(jax.grad(lambda p: weighted.loss_fn(p, batch, None)[0] -
                           PersomaModel(net).loss_fn(p, batch, None)[0]))(params)
  for name in ("item_genre_head", "item_star_head", "layers_2", "layers_0"):
    assert np.abs(np.asarray(grads["adapter"][name]["kernel"])).sum() > 0, name


def test_length_features_count_the_shown_items_and_flag_a_whole_history():
  mask = jnp.asarray([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], jnp.int32)
  f = np.asarray(jax.jit(genre_stats.length_features, static_argnums=1)(mask, G))
  assert f.shape == (3, G, 2)
  np.testing.assert_allclose(f[:, 0, 0], np.log1p([5, 3, 0]), rtol=1e-6)
  np.testing.assert_array_equal(f[:, 0, 1], [0, 1, 1])  # full window: 0; fewer than N: 1
  np.testing.assert_array_equal(f, np.broadcast_to(f[:, :1], f.shape))  # same for every genre


def test_length_features_let_the_tokens_tell_a_whole_history_from_a_full_window():
  """The same 3 items give the same tokens whether padded to N=5 (a whole history shorter than
  N) or filling N=3 (a full window) without the flag, and different tokens with it."""
  x5 = np.zeros((1, N, D), np.float32)
  x5[0, :3] = np.random.default_rng(3).normal(size=(3, D))
  mask5 = np.asarray([[1, 1, 1, 0, 0]], np.int32)
  x3, mask3 = x5[:, :3], mask5[:, :3]
  for flag in (False, True):
    adapter = get_adapter("genre_stats", input_dim=D, hidden_dim=16, num_genres=G,
                          genre_embed_dim=4, d_model=8, length_features=flag)
    params = jax.jit(adapter.init)(jax.random.PRNGKey(0), x5, mask5)
    width = np.asarray(nn.unbox(params)["params"]["genre_hidden_0"]["kernel"]).shape[0]
    assert width == 5 + 2 + 4 + (2 if flag else 0)  # counts, total, mean, genre emb (+ length)
    apply = jax.jit(adapter.apply)
    gap = np.abs(np.asarray(apply(params, x5, mask5)[0]) -
                 np.asarray(apply(params, x3, mask3)[0])).max()
    assert (gap > 1e-4) if flag else (gap < 1e-6), (flag, gap)


@pytest.mark.parametrize("min_count", [1, 2, 3])
def test_rank_features_pick_the_label_rules_top_and_bottom_genres(min_count):
  """With exact star counts, 'fewer than m ranked above and mean over the threshold' is the
  rule's liked set for max_liked = m (ties included), and likewise below for disliked."""
  from persoma.data import genres as genres_lib, labels as labels_lib
  rng = np.random.default_rng(min_count)
  g = genres_lib.NUM_GENRES
  hist = rng.poisson(0.5, size=(64, g, 5)).astype(np.float32)  # small counts: many ties
  hist[:, :, 3] += rng.poisson(0.4, size=(64, g))  # more 4-star movies: many liked candidates
  f = np.asarray(jax.jit(genre_stats.rank_features, static_argnums=1)(jnp.asarray(hist),
                                                                      min_count))
  cap = genre_stats.RANK_CAP
  assert f.shape == (64, g, 1 + 2 * (cap + 1))
  above, below = f[..., 1:cap + 2].argmax(-1), f[..., cap + 2:].argmax(-1)
  counts = hist.sum(-1)
  sums = (hist * np.arange(1, 6)).sum(-1)
  np.testing.assert_array_equal(f[..., 0], counts >= min_count)
  np.testing.assert_array_equal(f[..., 1:].sum(-1), 2 * (counts >= min_count))
  means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
  checked = 0
  for b in range(64):
    for m in (1, 2, 3, 4):
      cfg = labels_lib.LabelConfig(min_genre_count=min_count, max_liked=m, max_disliked=m)
      lab = labels_lib.labels_from_stats(sums[b], counts[b], cfg)
      ok = counts[b] >= min_count
      liked = {genres_lib.GENRES[i] for i in np.flatnonzero(
          ok & (means[b] > cfg.like_threshold) & (above[b] < m))}
      disliked = {genres_lib.GENRES[i] for i in np.flatnonzero(
          ok & (means[b] < cfg.dislike_threshold) & (below[b] < m))}
      assert liked == set(lab.liked) and disliked == set(lab.disliked), (b, m)
      checked += len(lab.liked) == m
  assert checked > 20  # the cut at m genres was exercised, not just short lists


def test_rank_features_widen_the_genre_tokens_and_reject_a_zero_count():
  x = np.random.default_rng(0).normal(size=(B, N, D)).astype(np.float32)
  mask = np.ones((B, N), np.int32)
  adapter = get_adapter("genre_stats", input_dim=D, hidden_dim=16, num_genres=G,
                        genre_embed_dim=4, d_model=8, rank_min_counts=(2, 3))
  params = jax.jit(adapter.init)(jax.random.PRNGKey(0), x, mask)
  width = np.asarray(nn.unbox(params)["params"]["genre_hidden_0"]["kernel"]).shape[0]
  assert width == 5 + 2 + 4 + 2 * (1 + 2 * (genre_stats.RANK_CAP + 1))
  tokens, out_mask = jax.jit(adapter.apply)(params, x, mask)
  assert tokens.shape == (B, G, 8) and np.isfinite(np.asarray(tokens)).all()
  bad = get_adapter("genre_stats", input_dim=D, hidden_dim=16, num_genres=G,
                    genre_embed_dim=4, d_model=8, rank_min_counts=(0,))
  with pytest.raises(ValueError, match="rank_min_counts must be >= 1"):
    bad.init(jax.random.PRNGKey(0), x, mask)
