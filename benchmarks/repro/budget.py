"""`reproduce.py --budget`: projected wall time of the program from measured train steps.

One train step (plus one decode batch) of each selected train run is measured in a subprocess
and cached per configuration under `<work_dir>/measure/step_times.json`; every runnable train
run of the plan is then projected from the cache (see `project`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from repro import execute, measure
from repro import state as state_lib
from repro import plan as plan_lib
from repro.plan import gin_default


def project(prog: Any) -> int:
  """Measures one train step (+ one decode batch) of each selected train run (cached per
  configuration) and projects the wall time of EVERY runnable train run of the plan: measured
  configurations exactly, the others from the measured run of the same method (else the same
  family, text or embedding) with the nearest encoder length, scaled by the length ratio."""
  cache_path = prog.store.measure_path("step_times")
  try:
    cache = json.loads(cache_path.read_text())
  except (OSError, ValueError):
    cache = {}
  steps = int(prog.settings.train_steps or gin_default("TRAIN_STEPS"))
  every = int(prog.settings.eval_every or gin_default("EVAL_EVERY_STEPS"))
  batch = int(prog.settings.batch_size or gin_default("BATCH_SIZE"))
  mbatch = int(prog.a.budget_batch or batch)
  eval_batch = int(gin_default("EVAL_BATCH_SIZE"))
  from persoma.data import split as split_lib  # pylint: disable=g-import-not-at-top
  data = execute.load_data(prog.settings)
  users = [split_lib.user_split(int(u)) for u in data.user_ids]
  n_val, n_test = users.count("validation"), users.count("test")

  def key(run):
    return json.dumps([run.method, run.history_size, run.fmt, run.mode,
                       dict(run.bindings).get("INPUTS_LENGTH"), prog.settings.model_size,
                       mbatch, prog.settings.dataset])

  def enc_len(run):  # encoder positions: soft prefix (text prompting: none) + task prompt + input
    b = dict(run.bindings)
    prompt = int(gin_default("TASK_PROMPT_LENGTH"))
    if run.method == "textprompt":
      return prompt + int(b["INPUTS_LENGTH"])
    prefix = 20 if run.method == "persoma_perceiver" else run.history_size
    return prefix + prompt + int(b.get("INPUTS_LENGTH") or gin_default("INPUTS_LENGTH"))

  runnable = [r for r in prog.plan if r.kind == "train" and not r.skip_reason]
  for run in prog.selected:
    if run in runnable and key(run) not in cache:
      print(f"measuring a train step of {run.run_id} at batch {mbatch} ...", flush=True)
      cache[key(run)] = dict(measure.step_time(run.gin_args(), mbatch, steps=2, predict=True),
                             encoder_length=enc_len(run), method=run.method)
      state_lib.write_json(cache_path, cache)
  def config(k):  # the run configuration of a cache key, whatever batch it was measured at
    k = json.loads(k)
    return json.dumps(k[:6] + k[7:])

  measured: dict[str, Any] = {}
  for k, v in cache.items():
    if json.loads(k)[5] == prog.settings.model_size and json.loads(k)[7] == \
        prog.settings.dataset and (config(k) not in measured or v["batch"] == mbatch):
      measured[config(k)] = v
  if not measured:
    raise SystemExit("error: nothing measured yet: select runs to measure with --only")
  rows, total = [], 0.0
  for run in runnable:
    fig, how = measured.get(config(key(run))), "measured"
    if fig is None:
      fam = [v for v in measured.values() if v["method"] == run.method] or [
          v for v in measured.values()
          if (v["method"] == "textprompt") == (run.method == "textprompt")] or list(
              measured.values())
      ref = min(fam, key=lambda v: abs(v["encoder_length"] - enc_len(run)))
      r = enc_len(run) / ref["encoder_length"]
      fig = dict(ref, step_secs=ref["step_secs"] * r, predict_secs=ref["predict_secs"] * r)
      how = f"est. from {ref['method']} L={ref['encoder_length']}"
    how += f" @b{fig['batch']}"
    step_s = fig["step_secs"] * batch / fig["batch"]  # CPU step time ~ linear in batch
    pred = fig["predict_secs"] * eval_batch / fig["batch"]
    n_steps = run.train_steps or steps  # group 7 trains longer
    secs = (n_steps * step_s + (n_steps // every) * math.ceil(n_val / eval_batch) * pred
            + math.ceil(n_test / eval_batch) * pred)
    total += secs
    rows.append((run.run_id, enc_len(run), step_s, pred, secs, how))
  longest = max(max(f) for f in plan_lib.LONG_TRAIN_FACTORS.values())
  print(f"\nBudget: {steps} steps max per run (up to {longest}x in group 7) at "
        f"batch {batch} (step times measured at the batch in the basis column, scaled "
        f"linearly), validation every {every} steps on {n_val} users, "
        f"test on {n_test} users, eval batch {eval_batch}; early stopping can only shorten")
  print(f"{'run id':56s} {'L':>5s} {'step s':>7s} {'decode s':>8s} {'hours':>6s}  basis")
  for rid, length, st, p, secs, how in rows:
    print(f"{rid:56s} {length:5d} {st:7.2f} {p:8.2f} {secs / 3600:6.2f}  {how}")
  print(f"TOTAL projected wall time of the {len(rows)} train runs: {total / 3600:.1f} h "
        f"(one run at a time on this machine; baselines and cost runs add minutes)")
  return 0
