"""Is the LM what holds the learned methods back? The set-pooling adapter with a direct label head.

The learned methods of the reproduction must learn, from user-level labels only, to aggregate N
item embeddings into per-genre preferences, and a T5 trained from scratch must learn to write
them. This script removes the LM: the same inputs (z-scored item embeddings of the sampled
histories), the same train examples (the program's 4 histories per train user, labelled as
`--resample_labels` says) and the same adapter as PERSOMA-Pool (`SetPoolAdapter`), followed by
one dense layer to 38 logits (19 genres x liked / disliked) trained with sigmoid cross-entropy.
A test user's prediction is, per side, the genres with probability > 0.5, highest first, at
most 3 (the label rule's cap); a genre on both sides stays on the likelier one. It is scored
with the program's weighted F1, beside the label rule on the same shown items.

If this direct learner scores near the rule, the from-scratch LM is what costs the learned
methods F1; if it scores near them, the limit is learning the aggregation from this much data.

  python benchmarks/direct_probe.py --data_dir ../shared/movielens                # N=50, uem
  python benchmarks/direct_probe.py --data_dir ../shared/movielens --resample_labels shown
  python benchmarks/direct_probe.py --data_dir ../shared/movielens --pooling ratio

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

import embedding_probe  # noqa: E402  (data flags; rule_f1: the label rule on the shown items)

MAX_PER_SIDE = 3  # LabelConfig.max_liked / max_disliked


def targets(examples, genres: tuple[str, ...]) -> np.ndarray:
  """``[E, 2G]`` float32: liked indicators, then disliked indicators."""
  col = {g: i for i, g in enumerate(genres)}
  y = np.zeros((len(examples), 2 * len(genres)), np.float32)
  for e, ex in enumerate(examples):
    y[e, [col[g] for g in ex.liked]] = 1.0
    y[e, [len(genres) + col[g] for g in ex.disliked]] = 1.0
  return y


def decode(probs: np.ndarray, genres: tuple[str, ...],
           threshold: float = 0.5) -> list[tuple[tuple[str, ...], ...]]:
  """Per row of ``[E, 2G]`` probabilities: (liked, disliked) genre names, see module docstring.

  A genre is predicted when its probability exceeds ``threshold`` (0.5 in the module docstring).
  """
  g = len(genres)
  out = []
  for p in probs:
    liked, disliked = p[:g].copy(), p[g:].copy()
    both = (liked > threshold) & (disliked > threshold)
    liked[both & (disliked >= liked)] = 0.0
    disliked[both & (liked > disliked)] = 0.0
    sides = []
    for side in (liked, disliked):
      order = [i for i in np.argsort(-side, kind="stable") if side[i] > threshold]
      order = order[:MAX_PER_SIDE]
      sides.append(tuple(genres[i] for i in order))
    out.append(tuple(sides))
  return out


def add_train_args(p: argparse.ArgumentParser, *, resample_labels: str = "history",
                   steps: int = 2500, hidden: int = 512, eval_every: int = 500) -> None:
  """The flags of a direct learner's training (shared with stats_probe.py)."""
  p.add_argument("--resamples", type=int, default=4, help="histories per train user (program: 4)")
  p.add_argument("--resample_labels", default=resample_labels, help="history | window | shown")
  p.add_argument("--steps", type=int, default=steps, help="train steps (program: 2500)")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--lr", type=float, default=1e-3)
  p.add_argument("--hidden", type=int, default=hidden, help="network width (program: 512)")
  p.add_argument("--eval_every", type=int, default=eval_every)
  p.add_argument("--split", default="test", help="the split scored at the end")
  p.add_argument("--seed", type=int, default=0)


def bad_train_args(args: argparse.Namespace) -> bool:
  """True (after printing an error) when the data folder is missing or a size is < 1."""
  if embedding_probe.data_dir_missing(args):
    return True
  if args.steps < 1 or args.batch < 1:
    print("error: --steps and --batch must be >= 1", file=sys.stderr)
    return True
  return False


def f1_text(r) -> str:
  """``F1 x (P x R x; liked x, disliked x)`` of a ``weighted.score_sets`` result."""
  return (f"F1 {r['f1']:.4f} (P {r['precision']:.4f} R {r['recall']:.4f}; liked "
          f"{r['f1_liked']:.4f}, disliked {r['f1_disliked']:.4f})")


def batched_probs(probs_fn, params, x: np.ndarray, size: int = 256) -> np.ndarray:
  """``probs_fn(params, batch)`` over ``x`` in batches of ``size`` rows, concatenated."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return np.concatenate([np.asarray(probs_fn(params, jnp.asarray(x[i:i + size])))
                         for i in range(0, len(x), size)])


def train_loop(step, params, state, arrays: tuple, y: np.ndarray, validate, args, t0: float):
  """Trains ``args.steps`` batches of ``args.batch`` examples, reshuffled each epoch (seed
  ``args.seed``): ``step(params, state, batch_arrays, batch_y) -> (params, state, loss)``.
  Every ``args.eval_every`` steps (and at the end) prints ``validate(params)['f1']``.

  Returns ``(best validation F1, its step, its params)``.
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(args.seed)
  order, at = rng.permutation(len(y)), 0
  best = (-1.0, 0, params)
  for i in range(1, args.steps + 1):
    if at + args.batch > len(order):
      order, at = rng.permutation(len(y)), 0
    b = order[at:at + args.batch]
    at += args.batch
    params, state, loss = step(params, state, tuple(jnp.asarray(a[b]) for a in arrays),
                               jnp.asarray(y[b]))
    if i % args.eval_every == 0 or i == args.steps:
      v = validate(params)
      print(f"step {i}/{args.steps} loss {float(loss):.4f} validation F1 {v['f1']:.4f} "
            f"({time.perf_counter() - t0:.0f}s)", flush=True)
      if v["f1"] > best[0]:
        best = (v["f1"], i, params)
  return best


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  embedding_probe.add_data_args(p)
  add_train_args(p)
  p.add_argument("--pooling", default="mean", help="SetPoolAdapter.pooling: mean | ratio")
  p.add_argument("--ratio_channels", type=int, default=64, help="SetPoolAdapter.ratio_channels")
  args = p.parse_args(argv)
  if bad_train_args(args):
    return 2

  t0 = time.perf_counter()
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from persoma.data import LabelConfig, build_examples, labels  # pylint: disable=g-import-not-at-top
  from persoma.data import genres as genres_lib  # pylint: disable=g-import-not-at-top
  from persoma.metrics import weighted  # pylint: disable=g-import-not-at-top
  from persoma.models.set_pool import SetPoolAdapter  # pylint: disable=g-import-not-at-top
  from persoma.seqio_tasks import config, tasks  # pylint: disable=g-import-not-at-top
  config.configure(data_dir=args.data_dir, encoder=args.encoder, standardize_embeddings=True)
  data = tasks.load_data(args.dataset)
  store = tasks.get_store(args.dataset, args.fmt)
  table = jnp.asarray(store.padded_table())  # [V+1, D]; row V is the padding
  genres = tuple(genres_lib.GENRES)

  def split_examples(split, resamples=1, labels="history"):
    ex = build_examples(data, split=split, history_size=args.history, sampler=args.sampler,
                        seed=args.seed, resamples=resamples, resample_labels=labels)
    idx = store.history_index([e.positions for e in ex], args.history)  # [E, N, k]
    return ex, idx, targets(ex, genres)

  train, x_train, y_train = split_examples("train", args.resamples, args.resample_labels)
  val, x_val, _ = split_examples("validation")
  held, x_held, _ = split_examples(args.split)
  print(f"loaded {data.name}: {len(train)} train histories, {len(val)} validation and "
        f"{len(held)} {args.split} users, N={args.history} {args.sampler}, {args.fmt}, "
        f"{store.item_dim}-dim items, in {time.perf_counter() - t0:.1f}s", flush=True)

  class Direct(nn.Module):
    """SetPoolAdapter ``[B, N, D] -> [B, K, H]``, flattened, dense to ``[B, 2G]`` logits."""

    @nn.compact
    def __call__(self, idx):
      k = idx.shape[-1]
      emb = table[idx].reshape(idx.shape[:2] + (k * store.dim,))
      mask = (idx[:, :, 0] < table.shape[0] - 1).astype(jnp.int32)
      tokens, _ = SetPoolAdapter(d_model=128, input_dim=k * store.dim, max_items=args.history,
                                 hidden_dim=args.hidden, pooling=args.pooling,
                                 ratio_channels=args.ratio_channels, name="adapter")(emb, mask)
      return nn.Dense(2 * len(genres), name="head")(tokens.reshape(tokens.shape[0], -1))

  model = Direct()
  params = model.init(jax.random.PRNGKey(args.seed), jnp.asarray(x_train[:2]))
  opt = optax.adamw(args.lr)
  state = opt.init(params)

  @jax.jit
  def step(params, state, x, y):
    def loss_fn(p):
      return optax.sigmoid_binary_cross_entropy(model.apply(p, x[0]), y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss

  probs_fn = jax.jit(lambda p, idx: jax.nn.sigmoid(model.apply(p, idx)))

  def score(params, examples, idx):
    probs = batched_probs(probs_fn, params, idx)
    return weighted.score_sets([(e.liked, e.disliked) for e in examples], decode(probs, genres))

  best = train_loop(step, params, state, (x_train,), y_train,
                    lambda p: score(p, val, x_val), args, t0)
  res = score(best[2], held, x_held)
  rule = embedding_probe.rule_f1(data, held, labels.movie_genre_matrix(data), LabelConfig())
  print(f"direct learner ({args.split}, best validation step {best[1]}): {f1_text(res)}",
        flush=True)
  print(f"label rule on the same shown items: {f1_text(rule)}", flush=True)
  keys = ("f1", "precision", "recall", "f1_liked", "f1_disliked")
  print(json.dumps({"dataset": data.name, "history": args.history, "sampler": args.sampler,
                    "fmt": args.fmt, "resample_labels": args.resample_labels,
                    "pooling": args.pooling,
                    "train_histories": len(train), "steps": args.steps, "best_step": best[1],
                    "split": args.split, "users": len(held),
                    "direct": {k: res[k] for k in keys}, "rule": {k: rule[k] for k in keys},
                    "seconds": round(time.perf_counter() - t0, 1)}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
