"""The rationale readout of a finished train run: its labels read from the rationale it writes.

A method with rationale targets (`plan.RATIONALE_METHODS`) writes the label rule's working
before its labels. `run_readout` scores its best checkpoint greedily with `persoma-eval
--readout rationale` on the validation users, then the test users: the run's rule applied to
the means each decode wrote (`persoma.metrics.readout`), and beside it the labels the same
decodes state. The validation users say which of the two a reader of the run should take.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from repro import execute
from repro import plan as plan_lib
from repro import state as state_lib

SPLITS = ("validation", "test")
KEYS = execute.MARGINAL_KEYS  # f1, precision, recall, f1_liked, f1_disliked


def readout_command(model_dir: Path, split: str) -> list[str]:
  """The `persoma-eval` command of one split of `run_readout` (run from the repository root)."""
  return [sys.executable, "-m", "persoma.train.main_eval", f"--checkpoint={model_dir}",
          f"--split={split}", "--readout=rationale", "--json"]


def result_file(best: Path, split: str, step: int) -> Path:
  """The file persoma-eval writes for `readout_command` (its own name for it)."""
  return best / f"eval_{split}_step{step}_readout.json"


def _usable(out: dict[str, Any] | None, step: int | None) -> bool:
  return (out is not None and out.get("readout") == "rationale" and "stated" in out
          and (step is None or out.get("step") == step))


def record(validation: dict[str, Any], test: dict[str, Any], wall: float | None
           ) -> dict[str, Any]:
  """The result's `readout` entry from the two splits' persoma-eval JSON: the test scores
  read from the rationale, `stated` (the same decodes' own labels), the validation F1 of
  each, and `users` / `no_rationale` of the test split."""
  return {"step": test["step"], "users": test.get("users"),
          "no_rationale": test.get("no_rationale"), "wall_secs": wall,
          **{k: test.get(k) for k in KEYS},
          "stated": {k: test["stated"].get(k) for k in KEYS},
          "validation_f1": validation["f1"],
          "validation_stated_f1": validation["stated"]["f1"]}


def run_readout(run: plan_lib.Run, store: state_lib.Store, step: int | None, *,
                echo: execute.Echo = print, cpu: int | None = None) -> dict[str, Any] | None:
  """`record` of `run`'s best checkpoint (step `step`), reusing the result file of an earlier
  readout of the same step per split; None (after echoing why) when the best checkpoint is
  gone or an evaluation fails or scores another step."""
  best = store.model_dir(run.run_id) / "best"
  t0 = time.time()
  outs: dict[str, dict[str, Any]] = {}
  ran = False
  for split in SPLITS:
    if step is not None and result_file(best, split, step).exists():
      out = json.loads(result_file(best, split, step).read_text())
      if _usable(out, step):
        outs[split] = out
        continue
    if not best.is_dir():
      echo(f"  [{run.run_id}] no best checkpoint under {best}: no rationale readout")
      return None
    echo(f"  [{run.run_id}] rationale readout, {split} users ...")
    rc, out = execute.run_eval(run, store, readout_command(store.model_dir(run.run_id), split),
                               "rationale readout", cpu, echo)
    ran = True
    if rc != 0 or not _usable(out, step):
      why = (f"exit code {rc}" if rc != 0 or out is None or "stated" not in out
             else f"it scored step {out.get('step')}, not the result's best step {step}")
      echo(f"  [{run.run_id}] rationale readout of the {split} users failed ({why}); log: "
           f"{store.log_path(run.run_id)}")
      return None
    outs[split] = out
  return record(outs["validation"], outs["test"], time.time() - t0 if ran else None)
