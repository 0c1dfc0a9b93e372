"""``persoma-data``: dataset statistics, baselines, and (registered by persoma.embeddings) embed.

  persoma-data stats --dataset=movielens/1m --data_dir=../shared/movielens --json
  persoma-data baseline --name=rule --dataset=movielens/1m --data_dir=../shared/movielens \
      --history=50 --sampler=recency --split=test --json

The JSON result is always the last line of stdout; ``--json`` suppresses the human-readable
table printed before it. Subcommands added by other modules call ``register(subparsers)`` and
``set_defaults(func=handler)``; ``handler(args)`` returns a JSON-able dict (printed last) or an
exit code. They may reuse :func:`add_dataset_args` and :func:`load_from_args`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from persoma import baselines
from persoma.data import DATASETS, ENV_DATA_DIR, SOURCES, load_dataset
from persoma.data import genres as genres_lib
from persoma.data import labels as labels_lib
from persoma.data import samplers, split as split_lib
from persoma.data.structures import MovieLensData


def add_dataset_args(p: argparse.ArgumentParser) -> None:
  """Dataset selection, strictness, pruning and label-rule flags."""
  p.add_argument("--dataset", default="synthetic", choices=DATASETS,
                 help="dataset name (default: synthetic, generated offline)")
  p.add_argument("--data_dir", default=None,
                 help=f"folder with the release files (or its parent); default: ${ENV_DATA_DIR}, "
                      "else the TFDS data_dir")
  p.add_argument("--descriptions", default="auto",
                 help="descriptions CSV (movieId, overview); 'auto' (default, as the SeqIO tasks): "
                      "<parent>/descriptions/ when present; 'none': no descriptions")
  p.add_argument("--source", default="auto", choices=SOURCES)
  p.add_argument("--no_download", action="store_true", help="never let TFDS download")
  p.add_argument("--strict", dest="strict", action="store_true", default=True,
                 help="fail on malformed lines (default)")
  p.add_argument("--no_strict", dest="strict", action="store_false",
                 help="skip malformed lines / unknown movie ids and report the counts")
  p.add_argument("--min_item_ratings", type=int, default=20)
  p.add_argument("--min_user_ratings", type=int, default=20)
  p.add_argument("--synthetic_seed", type=int, default=0, help="seed of the synthetic generator")
  p.add_argument("--min_genre_count", type=int, default=3)
  p.add_argument("--like_threshold", type=float, default=3.5)
  p.add_argument("--dislike_threshold", type=float, default=3.0)
  p.add_argument("--json", action="store_true", help="print only the JSON line")


def load_from_args(args: argparse.Namespace) -> MovieLensData:
  """``load_dataset`` with the flags of :func:`add_dataset_args`."""
  extra = {"seed": args.synthetic_seed} if args.dataset == "synthetic" else {}
  data_dir = args.data_dir or os.environ.get(ENV_DATA_DIR) or None
  return load_dataset(args.dataset, data_dir, args.descriptions, strict=args.strict,
                      min_item_ratings=args.min_item_ratings,
                      min_user_ratings=args.min_user_ratings, source=args.source,
                      download=not args.no_download, **extra)


def label_config_from_args(args: argparse.Namespace) -> labels_lib.LabelConfig:
  return labels_lib.LabelConfig(min_genre_count=args.min_genre_count,
                                like_threshold=args.like_threshold,
                                dislike_threshold=args.dislike_threshold)


def dataset_stats(data: MovieLensData,
                  config: labels_lib.LabelConfig = labels_lib.LabelConfig()) -> dict[str, Any]:
  """Sizes, label statistics, the per-genre like/dislike table and split sizes."""
  labs = labels_lib.user_labels(data, config)
  n = max(len(labs), 1)
  table = {}
  for g in genres_lib.GENRES:
    liked = sum(g in lab.liked for lab in labs)
    disliked = sum(g in lab.disliked for lab in labs)
    table[g] = {"liked": liked, "disliked": disliked, "liked_pct": round(100 * liked / n, 2),
                "disliked_pct": round(100 * disliked / n, 2)}
  names = split_lib.split_of_users(data.user_ids)
  empty = np.array([lab.empty for lab in labs], dtype=bool)
  splits = {s: {"users": int((names == s).sum()),
                "examples": int(((names == s) & ~empty).sum())} for s in split_lib.SPLITS}
  per_user = np.diff(data.ratings.user_offsets)
  return {
      "dataset": data.name, "synthetic": data.synthetic,
      "users": data.num_users, "movies": len(data.catalog), "ratings": len(data.ratings),
      "ratings_per_user": {"min": int(per_user.min()), "median": float(np.median(per_user)),
                           "max": int(per_user.max())},
      "movies_with_description": int(sum(1 for d in data.catalog.descriptions if d)),
      "mean_liked_genres": float(np.mean([len(x.liked) for x in labs])),
      "mean_disliked_genres": float(np.mean([len(x.disliked) for x in labs])),
      "users_without_labels": int(empty.sum()),
      "genre_table": table, "splits": splits, "label_config": vars(config).copy(),
      "load": data.report.to_dict(),
  }


def _print_stats(s: dict[str, Any]) -> None:
  tag = " [SYNTHETIC DATA]" if s["synthetic"] else ""
  print(f"{s['dataset']}{tag}: {s['users']} users, {s['movies']} movies, {s['ratings']} ratings "
        "after pruning")
  print(f"mean liked genres/user {s['mean_liked_genres']:.2f}, disliked "
        f"{s['mean_disliked_genres']:.2f}, users without labels {s['users_without_labels']}")
  print(f"{'genre':<12} {'liked%':>7} {'disliked%':>9}")
  for g, row in s["genre_table"].items():
    print(f"{g:<12} {row['liked_pct']:>7.2f} {row['disliked_pct']:>9.2f}")
  print("splits: " + ", ".join(f"{k} {v['users']} users / {v['examples']} examples"
                               for k, v in s["splits"].items()))
  skipped = s["load"]["skipped_lines"]
  if skipped or s["load"]["unknown_movie_ratings"]:
    print(f"skipped malformed lines: {skipped}; ratings with unknown movie ids: "
          f"{s['load']['unknown_movie_ratings']}")


def _cmd_stats(args: argparse.Namespace) -> dict[str, Any]:
  stats = dataset_stats(load_from_args(args), label_config_from_args(args))
  if not args.json:
    _print_stats(stats)
  return stats


def _cmd_baseline(args: argparse.Namespace) -> dict[str, Any]:
  data = load_from_args(args)
  result = baselines.evaluate_baseline(args.name, data, split=args.split,
                                       history_size=args.history, sampler=args.sampler,
                                       seed=args.seed, label_config=label_config_from_args(args))
  if not result["users"]:
    raise ValueError(f"the {args.split} split of {data.name} has no users with a non-empty label "
                     f"after pruning ({data.num_users} users in all): nothing to score")
  result["load"] = {"skipped_lines": data.report.skipped_lines,
                    "unknown_movie_ratings": data.report.unknown_movie_ratings}
  if not args.json:
    tag = " [SYNTHETIC DATA]" if data.synthetic else ""
    print(f"{args.name} baseline on {data.name}{tag} {args.split} N={args.history} "
          f"{args.sampler}: F1 {result['f1']:.4f} P {result['precision']:.4f} "
          f"R {result['recall']:.4f} ({result['users']} users)")
  return result


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="persoma-data", description=__doc__.split("\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("stats", help="dataset sizes, label statistics, genre table, split sizes")
  add_dataset_args(p)
  p.set_defaults(func=_cmd_stats)
  p = sub.add_parser("baseline", help="score a baseline (counting, rule, rule_tuned, all)")
  add_dataset_args(p)
  p.add_argument("--name", required=True, choices=baselines.BASELINES)
  p.add_argument("--history", type=int, default=50, help="history size N")
  p.add_argument("--sampler", default="recency", choices=samplers.SAMPLERS)
  p.add_argument("--split", default="test", choices=split_lib.SPLIT_CHOICES)
  p.add_argument("--seed", type=int, default=0, help="sampler seed")
  p.set_defaults(func=_cmd_baseline)
  try:
    embeddings_cli = importlib.import_module("persoma.embeddings.cli")
  except ModuleNotFoundError as e:
    if e.name != "persoma.embeddings.cli":
      raise
  else:
    embeddings_cli.register(sub)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    result = args.func(args)
  except (FileNotFoundError, ValueError) as e:
    print(f"persoma-data {args.command}: error: {e}", file=sys.stderr)
    return 2
  if isinstance(result, dict):
    print(json.dumps(result, sort_keys=True))
    return 0
  return int(result or 0)


if __name__ == "__main__":
  sys.exit(main())
