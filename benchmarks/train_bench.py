"""Training throughput of the runner's jitted train step (examples/s) on this machine.

  python benchmarks/train_bench.py [--sizes=tiny,small] [--methods=mlp,perceiver,text]
      [--history=50] [--batch=32] [--steps=5] [--quickstart]

For each T5 size and method (PERSOMA-MLP, PERSOMA-Perceiver, text prompting) at history size
N, it builds the model exactly as the runner does (`persoma.train.experiment.ModelSpec`), runs
`--steps` timed steps of `Trainer.train_step` (after one compile step) on random batches of the
right shapes (encoder length: the instruction for PERSOMA, the rendered history for text
prompting at ~`--text_tokens_per_item` tokens per item), and prints examples/s, step time,
encoder tokens and compile time side by side. `--quickstart` also times `persoma-train
--gin_file=gin/quickstart.gin` end to end in a subprocess and reports its wall time and peak
RSS (from `resource.getrusage` of the child).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def _batch(rng, b, enc_len, dec_len, n, d, history: bool):
  out = {
      "encoder_input_tokens": rng.integers(2, 700, (b, enc_len)).astype(np.int32),
      "decoder_input_tokens": rng.integers(2, 700, (b, dec_len)).astype(np.int32),
      "decoder_target_tokens": rng.integers(2, 700, (b, dec_len)).astype(np.int32),
      "decoder_loss_weights": np.ones((b, dec_len), np.float32),
  }
  if history:
    out["history_embeddings"] = rng.normal(size=(b, n, d)).astype(np.float32)
    out["history_mask"] = np.ones((b, n), np.int32)
  return out


def bench_one(size: str, method: str, n: int, batch: int, steps: int, dim: int,
              tokens_per_item: int, instruction_tokens: int, dec_len: int) -> dict:
  from persoma.train import experiment, optim, partitioning, trainer  # pylint: disable=g-import-not-at-top
  text = method == "text"
  spec = experiment.ModelSpec(
      size=size, composition="text" if text else "persoma",
      adapter="mlp" if method in ("mlp", "text") else method,
      adapter_fields={"perceiver": {"num_latents": 20}}, task_prompt_length=20)
  enc_len = instruction_tokens + (n * tokens_per_item if text else 0)
  rng = np.random.default_rng(0)
  b = _batch(rng, batch, enc_len, dec_len, n, dim, not text)
  model = spec.build(800, None if text else dim)
  t0 = time.time()
  tr = trainer.Trainer(model, partitioning.Partitioner(), optim.OptimizerConfig(),
                       trainer.TrainerConfig(train_steps=steps + 1, batch_size=batch),
                       tempfile.mkdtemp(), b, training_mode="full")
  m = tr.train_step(b)
  float(m["loss"])
  compile_s = time.time() - t0
  t0 = time.time()
  for _ in range(steps):
    m = tr.train_step(b)
  float(m["loss"])
  dt = (time.time() - t0) / steps
  prompt = 0 if text else (20 if method == "perceiver" else n)
  return {"size": size, "method": method, "enc_tokens": enc_len + prompt + 20,
          "step_s": dt, "examples_s": batch / dt, "compile_s": compile_s}


def bench_quickstart() -> dict:
  d = tempfile.mkdtemp()
  t0 = time.time()
  proc = subprocess.run(
      [sys.executable, "-m", "persoma.train.main_train", "--gin_file=gin/quickstart.gin",
       f"--gin.MODEL_DIR='{d}/qs'"], capture_output=True, text=True,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  wall = time.time() - t0
  peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
  tail = "\n".join(proc.stdout.strip().splitlines()[-6:])
  return {"wall_s": wall, "peak_rss_mb": peak_mb, "rc": proc.returncode, "tail": tail}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--sizes", default="tiny,small")
  p.add_argument("--methods", default="mlp,perceiver,text")
  p.add_argument("--history", type=int, default=50)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--dim", type=int, default=3 * 384, help="history embedding width (uem MiniLM)")
  p.add_argument("--text_tokens_per_item", type=int, default=30)
  p.add_argument("--instruction_tokens", type=int, default=24)
  p.add_argument("--targets_length", type=int, default=32)
  p.add_argument("--quickstart", action="store_true")
  a = p.parse_args(argv)
  import jax  # pylint: disable=g-import-not-at-top
  print(f"devices: {jax.device_count()} x {jax.devices()[0].platform}, cpus: {os.cpu_count()}, "
        f"load avg: {os.getloadavg()[0]:.1f}; N={a.history}, batch={a.batch}", flush=True)
  print(f"{'size':6s} {'method':10s} {'enc tok':>8s} {'step s':>8s} {'ex/s':>8s} "
        f"{'compile s':>10s}", flush=True)
  rows = []
  for size in a.sizes.split(","):
    for method in a.methods.split(","):
      r = bench_one(size, method, a.history, a.batch, a.steps, a.dim, a.text_tokens_per_item,
                    a.instruction_tokens, a.targets_length)
      rows.append(r)
      print(f"{r['size']:6s} {r['method']:10s} {r['enc_tokens']:8d} {r['step_s']:8.3f} "
            f"{r['examples_s']:8.1f} {r['compile_s']:10.1f}", flush=True)
  for size in a.sizes.split(","):
    base = [r for r in rows if r["size"] == size and r["method"] == "text"]
    if base:
      for r in rows:
        if r["size"] == size and r["method"] != "text":
          print(f"{size}: text/{r['method']} step-time ratio "
                f"{base[0]['step_s'] / r['step_s']:.2f}x, encoder tokens "
                f"{base[0]['enc_tokens'] / r['enc_tokens']:.1f}x", flush=True)
  if a.quickstart:
    q = bench_quickstart()
    print(f"quickstart: wall {q['wall_s']:.0f}s, peak RSS {q['peak_rss_mb']:.0f} MB, "
          f"exit {q['rc']}\n{q['tail']}", flush=True)


if __name__ == "__main__":
  main()
