"""How far can a learner get from N shown items? A readout of their exact genre statistics.

The target of the reproduction is the label rule on a user's *whole* history, while a model sees
only N sampled items. The rule applied to the shown items is one predictor of that target; a
learner could beat it by calibrating the rule's thresholds to what N items reveal. This script
measures how far a small learned readout gets without any embedding or LM (not a ceiling: the
rule with fitted thresholds, ``rule_probe.py``, goes further): each history becomes its exact per-genre
rating histogram (``[19, 5]`` counts of 1..5-star ratings over the shown movies carrying the
genre, from the catalog's true genres), and a small network trained with sigmoid cross-entropy
maps it to 38 logits (19 genres x liked / disliked). Predictions are decoded and scored exactly
as in ``direct_probe.py`` (per side the genres with probability > 0.5, at most 3). The rule on
the same shown items is printed beside it.

Two readouts: ``flat`` (an MLP over all 95 counts) and ``per_genre`` (one MLP shared by the 19
genres over the genre's own counts, a learned genre embedding and the history's mean over
genres, so it can rank genres against each other like the rule does).

``--inputs embeddings`` replaces the exact histogram with the z-scored item embeddings (as
PERSOMA's adapters see them) through ``persoma.models.genre_stats.GenreStatsAdapter`` with
2-wide output tokens (one liked and one disliked logit per genre): its item heads give genre
probabilities ``[N, 19]`` and a star distribution ``[N, 5]``, summed into a soft ``[19, 5]``
histogram, then its per-genre MLP. ``--aux_weight`` adds the adapter's item-head loss
(``genre_stats.item_loss``: the catalog's genres and the user's stars); with 0 the heads learn
from the user-level labels alone.

  python benchmarks/stats_probe.py --data_dir ../shared/movielens                    # N=50
  python benchmarks/stats_probe.py --data_dir ../shared/movielens --history 100 --readout flat
  python benchmarks/stats_probe.py --data_dir ../shared/movielens --inputs embeddings --aux_weight 1

Prints progress, one line per figure, and a JSON summary as the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import direct_probe  # noqa: E402  (flags, train loop, targets, decode)
import embedding_probe  # noqa: E402  (data flags; rule_f1)

READOUTS = ("flat", "per_genre")
INPUTS = ("exact", "embeddings")


def rating_histograms(genres: np.ndarray, stars: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """``[E, G, 5]`` float32: per example and genre, the shown movies' count of each star rating,
  from ``persoma.data.labels.item_targets`` (``genres [E, N, G]``, ``stars [E, N]``) and the
  history mask ``[E, N]``."""
  onehot = np.eye(5, dtype=np.float32)[stars] * mask[..., None]  # [E, N, 5]
  return np.einsum("eng,ens->egs", genres, onehot)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  embedding_probe.add_data_args(p)
  p.add_argument("--readout", default="per_genre", help="|".join(READOUTS))
  p.add_argument("--inputs", default="exact", help="|".join(INPUTS))
  p.add_argument("--aux_weight", type=float, default=0.0,
                 help="item-level genre + star loss weight (--inputs embeddings)")
  direct_probe.add_train_args(p, resample_labels="window", steps=5000, hidden=256,
                              eval_every=1000)
  args = p.parse_args(argv)
  if direct_probe.bad_train_args(args):
    return 2
  if args.readout not in READOUTS or args.inputs not in INPUTS:
    print(f"error: --readout={args.readout!r} / --inputs={args.inputs!r}; valid: "
          f"{', '.join(READOUTS)} / {', '.join(INPUTS)}", file=sys.stderr)
    return 2

  t0 = time.perf_counter()
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from persoma.data import LabelConfig, build_examples, labels  # pylint: disable=g-import-not-at-top
  from persoma.data import genres as genres_lib  # pylint: disable=g-import-not-at-top
  from persoma.metrics import weighted  # pylint: disable=g-import-not-at-top
  from persoma.models import genre_stats  # pylint: disable=g-import-not-at-top
  from persoma.models.genre_stats import GenreStatsAdapter  # pylint: disable=g-import-not-at-top
  from persoma.seqio_tasks import config, tasks  # pylint: disable=g-import-not-at-top
  config.configure(data_dir=args.data_dir, encoder=args.encoder, standardize_embeddings=True)
  data = tasks.load_data(args.dataset)
  genres = tuple(genres_lib.GENRES)
  gm = labels.movie_genre_matrix(data)
  embedded = args.inputs == "embeddings"
  if embedded:
    store = tasks.get_store(args.dataset, args.fmt)
    table = jnp.asarray(store.padded_table())  # [V+1, D]; row V is the padding

  def split_examples(split, resamples=1, resample_labels="history"):
    ex = build_examples(data, split=split, history_size=args.history, sampler=args.sampler,
                        seed=args.seed, resamples=resamples, resample_labels=resample_labels)
    positions = [e.positions for e in ex]
    genres_, stars = labels.item_targets(data, positions, args.history)
    if embedded:
      x = (store.history_index(positions, args.history), genres_, stars)
    else:
      mask = (np.arange(args.history)[None] < np.array([len(p) for p in positions])[:, None])
      x = (rating_histograms(genres_, stars, mask.astype(np.float32)),)
    return ex, x, direct_probe.targets(ex, genres)

  train, x_train, y_train = split_examples("train", args.resamples, args.resample_labels)
  val, x_val, _ = split_examples("validation")
  held, x_held, _ = split_examples(args.split)
  print(f"loaded {data.name}: {len(train)} train histories ({args.resample_labels} labels on "
        f"the copies), {len(val)} validation and {len(held)} {args.split} users, "
        f"N={args.history} {args.sampler}, in {time.perf_counter() - t0:.1f}s", flush=True)

  num_genres, hidden, readout = len(genres), args.hidden, args.readout

  class Readout(nn.Module):
    """``[B, G, 5]`` exact star counts, or ``[B, N, k]`` text indices through
    ``GenreStatsAdapter`` (2-wide tokens: one liked and one disliked logit per genre), to
    ``[B, 2G]`` logits (liked block, then disliked)."""

    @nn.compact
    def __call__(self, x):
      if embedded:
        k = x.shape[-1]
        mask = (x[:, :, 0] < table.shape[0] - 1).astype(jnp.int32)  # [B, N]
        logits, _ = GenreStatsAdapter(
            d_model=2, input_dim=k * store.dim, max_items=args.history, hidden_dim=hidden,
            name="adapter")(table[x].reshape(x.shape[:2] + (k * store.dim,)), mask)
        return jnp.concatenate([logits[..., 0], logits[..., 1]], -1)  # [B, G, 2] -> [B, 2G]
      x = genre_stats.genre_features(x)
      if readout == "flat":
        h = x.reshape(x.shape[0], -1)
        for i in range(2):
          h = nn.gelu(nn.Dense(hidden, name=f"dense_{i}")(h))
        return nn.Dense(2 * num_genres, name="out")(h)
      genre = self.param("genre_embedding", nn.initializers.normal(0.1), (num_genres, 32))
      h = jnp.concatenate([x, jnp.broadcast_to(genre, x.shape[:1] + genre.shape)], -1)
      h = nn.gelu(nn.Dense(hidden, name="dense_0")(h))  # [B, G, H]
      h = jnp.concatenate([h, jnp.broadcast_to(h.mean(1, keepdims=True), h.shape)], -1)
      h = nn.gelu(nn.Dense(hidden, name="dense_1")(h))
      logits = nn.Dense(2, name="out")(h)  # [B, G, 2]
      return jnp.concatenate([logits[..., 0], logits[..., 1]], -1)

  model = Readout()
  params = model.init(jax.random.PRNGKey(args.seed), jnp.asarray(x_train[0][:2]))
  opt = optax.adamw(args.lr)
  state = opt.init(params)

  @jax.jit
  def step(params, state, x, y):
    def loss_fn(p):
      logits, inter = model.apply(p, x[0], mutable=["intermediates"])
      loss = optax.sigmoid_binary_cross_entropy(logits, y).mean()
      if embedded and args.aux_weight > 0:
        mask = x[0][:, :, 0] < table.shape[0] - 1
        loss += args.aux_weight * genre_stats.item_loss(
            *genre_stats.find_item_logits(inter), x[1], x[2], mask)
      return loss
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss

  probs_fn = jax.jit(lambda p, x: jax.nn.sigmoid(model.apply(p, x)))

  def score(probs, examples, threshold=0.5):
    return weighted.score_sets([(e.liked, e.disliked) for e in examples],
                               direct_probe.decode(probs, genres, threshold))

  best = direct_probe.train_loop(
      step, params, state, x_train, y_train,
      lambda p: score(direct_probe.batched_probs(probs_fn, p, x_val[0]), val), args, t0)
  val_probs = direct_probe.batched_probs(probs_fn, best[2], x_val[0])
  held_probs = direct_probe.batched_probs(probs_fn, best[2], x_held[0])
  res = score(held_probs, held)
  # The decision threshold that maximises validation F1 at the best step (weighted F1 rewards
  # recall more than a 0.5 cut on a cross-entropy-trained output gives).
  grid = [round(t, 2) for t in np.arange(0.1, 0.55, 0.05)]
  val_f1 = [score(val_probs, val, t)["f1"] for t in grid]
  threshold = grid[int(np.argmax(val_f1))]
  tuned = score(held_probs, held, threshold)
  rule = embedding_probe.rule_f1(data, held, gm, LabelConfig())
  for name, r in (("threshold 0.5", res), (f"threshold {threshold} (best on validation)", tuned)):
    print(f"{readout} readout on {args.inputs} genre statistics ({args.split}, best validation "
          f"step {best[1]}, {name}): {direct_probe.f1_text(r)}", flush=True)
  print(f"label rule on the same shown items: {direct_probe.f1_text(rule)}", flush=True)
  keys = ("f1", "precision", "recall", "f1_liked", "f1_disliked")
  print(json.dumps({"dataset": data.name, "history": args.history, "sampler": args.sampler,
                    "readout": readout, "inputs": args.inputs, "aux_weight": args.aux_weight,
                    "resample_labels": args.resample_labels,
                    "train_histories": len(train), "steps": args.steps, "best_step": best[1],
                    "split": args.split, "users": len(held),
                    "stats": {k: res[k] for k in keys}, "threshold": threshold,
                    "stats_tuned": {k: tuned[k] for k in keys},
                    "rule": {k: rule[k] for k in keys},
                    "seconds": round(time.perf_counter() - t0, 1)}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
