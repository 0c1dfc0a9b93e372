"""Data pipeline figures: wall time per stage and peak RSS (issue 2 target on ml-1m: load +
prune + labels + split < 15 s, peak RSS < 4 GB on a 2-core machine).

  python benchmarks/data_bench.py                      # ml-1m from ../shared/movielens
  python benchmarks/data_bench.py --dataset=synthetic

Prints one line per stage, then a JSON summary as the last line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "movielens"


def _rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--dataset", default="movielens/1m")
  p.add_argument("--data_dir", default=str(DEFAULT_DATA))
  p.add_argument("--descriptions", default="auto")
  p.add_argument("--history", type=int, default=50)
  p.add_argument("--sampler", default="recency")
  args = p.parse_args(argv)

  t0 = time.perf_counter()
  from persoma.data import (build_examples, labels, preprocess, releases,  # pylint: disable=g-import-not-at-top
                            split, synthetic)
  from persoma.data import _resolve_descriptions  # pylint: disable=g-import-not-at-top
  stages: dict[str, float] = {"import": time.perf_counter() - t0}

  t = time.perf_counter()
  if args.dataset == "synthetic":
    raw = synthetic.generate_raw()
  else:
    folder = releases.find_release_dir(args.dataset, args.data_dir)
    if folder is None:
      print(f"no {args.dataset} files under {args.data_dir}", file=sys.stderr)
      return 2
    raw = releases.read_release(folder, descriptions=_resolve_descriptions(args.descriptions,
                                                                          folder))
  stages["load"] = time.perf_counter() - t
  t = time.perf_counter()
  data = preprocess.build_dataset(raw, args.dataset, synthetic=args.dataset == "synthetic")
  stages["prune"] = time.perf_counter() - t
  t = time.perf_counter()
  labs = labels.user_labels(data)
  stages["labels"] = time.perf_counter() - t
  t = time.perf_counter()
  names = split.split_of_users(data.user_ids)
  stages["split"] = time.perf_counter() - t
  t = time.perf_counter()
  exs = build_examples(data, split="all", history_size=args.history, sampler=args.sampler)
  stages[f"examples_all_h{args.history}_{args.sampler}"] = time.perf_counter() - t

  core = sum(stages[k] for k in ("import", "load", "prune", "labels", "split"))
  for k, v in stages.items():
    print(f"{k:<32} {v:7.2f} s")
  print(f"{'load+prune+labels+split (+import)':<32} {core:7.2f} s  (target < 15 s)")
  rss = _rss_mb()
  print(f"{'peak RSS':<32} {rss:7.0f} MB  (target < 4096 MB)")
  summary = {"dataset": data.name, "synthetic": data.synthetic, "users": data.num_users,
             "movies": len(data.catalog), "ratings": len(data.ratings),
             "labelled_users": sum(not x.empty for x in labs), "examples": len(exs),
             "test_users": int((names == "test").sum()),
             "seconds": {k: round(v, 3) for k, v in stages.items()},
             "core_seconds": round(core, 3), "peak_rss_mb": round(rss, 1)}
  print(json.dumps(summary, sort_keys=True))
  return 0


if __name__ == "__main__":
  sys.exit(main())
