"""Greedy decoding vs thresholded beam (or sample) marginals for surviving reproduction checkpoints.

For every `<work_dir>/runs/<run id>/model` with a best checkpoint, runs (unless its result is
already there, or --force)

  persoma-eval --checkpoint <model dir> --split test --num_decodes K --json

which beam-decodes the validation and test users, tunes the marginal cut on validation and
scores the test users (`persoma.train.marginal_eval`). Prints a markdown table (greedy F1 from
the run's own `eval_test.json`, the best beam alone, the thresholded marginals) and adds the
figures, metrics only, to --out (default `benchmarks/repro/marginal_decoding.json`; a row of the
same work dir, run and decoding is replaced, every other row is kept).

  python benchmarks/marginal_decoding.py --work_dir ~/persoma_repro [--work_dir DIR2]
      [--only 'persoma_genre_names-*'] [--num_decodes 16] [--cpu 0]

With `--decode_method sample` (e.g. `--num_decodes 64`) the K decodes are independent
temperature samples (`--temperature`, default 1) and a class's marginal is the fraction of
samples naming it; the table then also shows the run's 16-beam marginals where they were
written, and the figures go to `benchmarks/repro/sampled_marginals.json` unless --out says.

`benchmarks/reproduce.py` now does the same after every train run of its plan and records the
figures in the run's result (`--num_decodes`, `--add_marginals`); this script remains for work
dirs outside the plan's ledger (retrained or other-seed copies) and for a side-by-side table.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from persoma import atomic_io
from persoma.train import main_eval

REPO = Path(__file__).resolve().parents[1]
KEYS = ("f1", "precision", "recall", "f1_liked", "f1_disliked")


def find_runs(work_dirs: list[str], patterns: list[str]) -> list[tuple[str, Path]]:
  """`(work dir label, model dir)` of every run with a best checkpoint, sorted by run id."""
  out = []
  for wd in work_dirs:
    root = Path(wd).expanduser()
    if not (root / "runs").is_dir():
      raise SystemExit(f"error: {root}/runs does not exist (is --work_dir the reproduce.py "
                       "work dir?)")
    for model in sorted(root.glob("runs/*/model")):
      run_id = model.parent.name
      if patterns and not any(fnmatch.fnmatch(run_id, p) for p in patterns):
        continue
      if (model / "best").is_dir() and (model / "eval_test.json").exists():
        out.append((root.name, model))
  return out


def beam_result(model: Path, k: int, method: str = "beam",
                temperature: float = 1.0) -> dict | None:
  """The newest written `eval_test_step*<suffix>.json` under `model/best`, or None."""
  suffix = main_eval.result_suffix(method, k, temperature)
  hits = sorted(glob.glob(str(model / "best" / f"eval_test_step*{suffix}.json")))
  return json.loads(Path(hits[-1]).read_text()) if hits else None


def _row_key(row: dict) -> tuple:
  return (row.get("work_dir"), row.get("run_id"), row.get("decode_method", "beam"),
          row.get("num_decodes"), row.get("temperature"))


def read_rows(path: str) -> list[dict]:
  """The rows already in `path` ([] when it does not exist); a file that is not a JSON list of
  objects is an error naming it, before anything is decoded or written."""
  try:
    rows = atomic_io.read_json_to_extend(path, list)
  except ValueError as e:
    raise SystemExit(f"error: --out {e}") from None
  if not all(isinstance(r, dict) for r in rows):
    raise SystemExit(f"error: --out {path}: not a list of result rows; not overwriting it")
  return rows


def merge_rows(kept: list[dict], new: list[dict]) -> list[dict]:
  """`kept` with each row of the same work dir, run, decoding and K replaced by its `new` row
  (in place), then the other new rows: runs of other work dirs or other --only selections
  stay in the file."""
  fresh = {_row_key(r): r for r in new}
  out = [fresh.pop(_row_key(r), r) for r in kept]
  return out + [r for r in new if _row_key(r) in fresh]


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--work_dir", action="append", required=True,
                 help="a reproduce.py work dir (repeatable)")
  p.add_argument("--only", action="append", default=[], help="fnmatch pattern of run ids")
  p.add_argument("--num_decodes", type=int, default=16)
  p.add_argument("--decode_method", default="beam", choices=("beam", "sample"))
  p.add_argument("--temperature", type=float, default=1.0, help="with --decode_method sample")
  p.add_argument("--cpu", type=int, default=None, help="pin each evaluation to this core")
  p.add_argument("--force", action="store_true", help="re-evaluate runs that have a result")
  p.add_argument("--out", help="figures JSON (default benchmarks/repro/marginal_decoding.json, "
                 "or sampled_marginals.json with --decode_method sample)")
  a = p.parse_args(argv)
  sampled = a.decode_method == "sample"
  if a.out is None:
    a.out = str(REPO / "benchmarks" / "repro" / ("sampled_marginals.json" if sampled
                                                 else "marginal_decoding.json"))
  what = f"{a.num_decodes} samples at T={a.temperature:g}" if sampled else f"{a.num_decodes} beams"
  top1_key = f"{a.decode_method}_top1"
  kept = read_rows(a.out)
  runs = find_runs(a.work_dir, a.only)
  if not runs:
    raise SystemExit("error: no run with a best checkpoint and eval_test.json matched")
  env = dict(os.environ)
  if a.cpu is not None:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                        "intra_op_parallelism_threads=1").strip()
  rows = []
  for i, (label, model) in enumerate(runs, 1):
    run_id = model.parent.name
    res = None if a.force else beam_result(model, a.num_decodes, a.decode_method, a.temperature)
    if res is None:
      print(f"[{i}/{len(runs)}] {label}/{run_id}: decoding {what} ...",
            file=sys.stderr, flush=True)
      t0 = time.time()
      cmd = ["persoma-eval", f"--checkpoint={model}", "--split=test",
             f"--num_decodes={a.num_decodes}", "--json"]
      if sampled:
        cmd += ["--decode_method=sample", f"--temperature={a.temperature}"]
      subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL,
                     preexec_fn=(lambda: os.sched_setaffinity(0, {a.cpu}))
                     if a.cpu is not None else None)
      res = beam_result(model, a.num_decodes, a.decode_method, a.temperature)
      if res is None:
        raise SystemExit(f"error: persoma-eval wrote no {a.decode_method} result under "
                         f"{model}/best")
      print(f"  done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    greedy = json.loads((model / "eval_test.json").read_text())
    row = {"work_dir": label, "run_id": run_id, "step": res["step"],
           "users": res["users"], "num_decodes": res["num_decodes"],
           "threshold": res["threshold"], "validation_f1": res.get("validation_f1"),
           "greedy": {k: greedy.get(k) for k in KEYS},
           top1_key: {k: res[top1_key][k] for k in KEYS},
           "marginals": {k: res[k] for k in KEYS}}
    if res.get("side_thresholds"):
      row["side_thresholds"] = res["side_thresholds"]
    if sampled:
      beams = beam_result(model, 16)
      row.update(decode_method="sample", temperature=a.temperature,
                 beam16_marginals_f1=beams["f1"] if beams else None)
    rows.append(row)
  rows = merge_rows(kept, rows)
  atomic_io.write_text(a.out, json.dumps(rows, indent=1) + "\n")
  rows = [r for r in rows if top1_key in r and r.get("num_decodes") == a.num_decodes
          and r.get("temperature") == (a.temperature if sampled else None)]
  if sampled:
    print(f"| work dir | run | greedy F1 | 16-beam marginals F1 | most likely sample F1 | "
          f"marginals of {what}: F1 (P / R; liked / disliked) | cut |\n"
          "|---|---|---|---|---|---|---|")
  else:
    print("| work dir | run | greedy F1 | best beam F1 | marginals F1 (P / R; liked / disliked) "
          "| cut |\n|---|---|---|---|---|---|")
  for r in rows:
    m = r["marginals"]
    beams = ""
    if sampled:
      b16 = r["beam16_marginals_f1"]
      beams = ("–" if b16 is None else f"{b16:.3f}") + " | "
    print(f"| {r['work_dir']} | `{r['run_id']}` | {r['greedy']['f1']:.3f} | {beams}"
          f"{r[top1_key]['f1']:.3f} | {m['f1']:.3f} ({m['precision']:.3f} / "
          f"{m['recall']:.3f}; {m['f1_liked']:.3f} / {m['f1_disliked']:.3f}) | "
          f"{r['threshold']:.2f} |")
  sided = [r for r in rows if "side_thresholds" in r]
  if sided:
    print("\nSeparate cuts for the liked and the disliked genres (tuned on validation):\n\n"
          "| work dir | run | one cut: F1 | separate cuts: F1 (P / R; liked / disliked) | "
          "cuts liked / disliked |\n|---|---|---|---|---|")
    for r in sided:
      sd = r["side_thresholds"]
      print(f"| {r['work_dir']} | `{r['run_id']}` | {r['marginals']['f1']:.3f} | "
            f"{sd['f1']:.3f} ({sd['precision']:.3f} / {sd['recall']:.3f}; "
            f"{sd['f1_liked']:.3f} / {sd['f1_disliked']:.3f}) | "
            f"{sd['liked']:.2f} / {sd['disliked']:.2f} |")
  print(f"wrote {a.out}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
