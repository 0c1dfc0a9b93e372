"""On-disk bookkeeping of the reproduction: result JSONs, per-run progress, run status.

Layout under the work dir (never inside the repository):

  results/<run_id>.json        the finished run's figures + metadata (what "done" means)
  results/archive/...          results of an older configuration, moved aside (never deleted)
  runs/<run_id>/model/         MODEL_DIR of a train run (checkpoints, config.gin, eval JSON)
  runs/<run_id>/progress.json  attempts, accumulated wall time, last error, fingerprint
  runs/<run_id>/log.txt        the run's full output (appended per attempt; its `validation
                               step N: f1 X` lines are the run's validation history)
  measure/*.json               cached measurements (token lengths, step times)
  results.json                 every valid result, collected

The ledger (`benchmarks/repro/ledger/<run_id>.<fingerprint>.json` in the repository, for the
MovieLens-1M program) keeps a copy of every finished run's figures and metadata: aggregate
metrics only, never data. One file per configuration, so another seed or setting adds an entry
and never replaces one. Work dirs live on machines that come and go; the ledger is what a fresh
clone resumes from. A run whose work dir holds no valid result for the current configuration
but whose ledger entry does counts as done, with the ledger's figures. Unfinished train runs
leave `ledger/progress/<run_id>.<fingerprint>.json`: the last checkpoint step and the
validation F1s reached (kept when a reset machine restarts the run lower, dropped once the run
has a result), so interim figures outlive the work dir too; the page lists them.

A result is valid when it parses, names the run, carries the fingerprint of the run's current
configuration and finite F1 / precision / recall in [0, 1] (cost runs: their token counts).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

from persoma import atomic_io
from repro import lock as lock_lib
from repro import plan as plan_lib

PROGRESS_SHOWN = 4  # validation figures of an unfinished run on the page (+ the best)
# what `persoma.train.loop.fit` logs after each validation
VALIDATION_RE = re.compile(r"validation step (\d+): f1 ([0-9.]+)")

STATUSES = ("done", "running", "pending", "interrupted", "failed", "stale", "invalid",
            "blocked", "skipped")


def write_json(path: Path, obj: Any) -> None:
  """Atomic JSON write (tmp + rename)."""
  atomic_io.write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _finite01(x: Any) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) \
      and 0.0 <= x <= 1.0


def result_problem(obj: Any, run_id: str, fingerprint: str) -> str | None:
  """Why `obj` is not a valid result of `run_id` at `fingerprint` (None: valid)."""
  if not isinstance(obj, dict):
    return "not a JSON object"
  if obj.get("run_id") != run_id:
    return f"names run {obj.get('run_id')!r}"
  if obj.get("fingerprint") != fingerprint:
    return (f"configuration changed (fingerprint {obj.get('fingerprint')} != {fingerprint})")
  if obj.get("kind") == "cost":
    if not isinstance(obj.get("encoder_tokens"), (int, float)):
      return "cost result without encoder_tokens"
    return None
  for k in ("f1", "precision", "recall"):
    if not _finite01(obj.get(k)):
      return f"{k}={obj.get(k)!r} is not a number in [0, 1]"
  return None


def _progress_record(path: Path) -> dict[str, Any] | None:
  """A ledger progress record with an int `step` and `[step, F1]` pairs; None when absent or
  malformed (a hand-edited file must not break the page: it is then rewritten or ignored)."""
  rec, _ = _read(path)
  if not isinstance(rec, dict) or isinstance(rec.get("step"), bool) \
      or not isinstance(rec.get("step"), int):
    return None
  val = rec.get("validation") or []
  ok = isinstance(val, list) and all(
      isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and _finite01(v[1])
      for v in val)
  return dict(rec, validation=[[int(a), float(b)] for a, b in val]) if ok else None


def _read(path: Path) -> tuple[dict | None, str | None]:
  """(parsed JSON, None), (None, None) when absent, or (None, problem) when unreadable."""
  if not path.exists():
    return None, None
  try:
    return json.loads(path.read_text()), None
  except (OSError, ValueError) as e:
    return None, f"{path}: unreadable ({e})"


class Store:
  """Result and progress files of one work dir."""

  def __init__(self, work_dir: str | os.PathLike, ledger_dir: str | os.PathLike | None = None):
    self.root = Path(work_dir).expanduser().resolve()
    self.ledger = Path(ledger_dir).expanduser().resolve() if ledger_dir else None

  # paths
  def result_path(self, run_id: str) -> Path:
    return self.root / "results" / f"{run_id}.json"

  def ledger_path(self, run_id: str, fingerprint: str) -> Path:
    assert self.ledger is not None
    return self.ledger / f"{run_id}.{fingerprint}.json"

  def run_dir(self, run_id: str) -> Path:
    return self.root / "runs" / run_id

  def model_dir(self, run_id: str) -> Path:
    return self.run_dir(run_id) / "model"

  def lock_path(self, run_id: str) -> Path:
    """The run's lock (repro.lock), outside its run dir so archiving never moves it."""
    return self.root / "locks" / f"{run_id}.json"

  def log_path(self, run_id: str) -> Path:
    return self.run_dir(run_id) / "log.txt"

  def measure_path(self, name: str) -> Path:
    return self.root / "measure" / f"{name}.json"

  # results
  def read_result(self, run_id: str, fingerprint: str | None = None
                  ) -> tuple[dict | None, str | None]:
    """(result, None), (None, None) when absent, or (None, problem) when unreadable.

    With a ledger and `fingerprint`: when the work dir has no result valid for `fingerprint`
    but the ledger has, the ledger's.
    """
    obj, problem = _read(self.result_path(run_id))
    if (self.ledger is not None and fingerprint is not None
        and (obj is None or problem or result_problem(obj, run_id, fingerprint))):
      led, led_problem = _read(self.ledger_path(run_id, fingerprint))
      if led is not None and not led_problem and result_problem(led, run_id, fingerprint) is None:
        return led, None
    return obj, problem

  def write_result(self, run_id: str, obj: Mapping[str, Any]) -> Path:
    """Writes the work dir's result and, with a ledger, its ledger entry."""
    path = self.result_path(run_id)
    write_json(path, dict(obj))
    if self.ledger is not None:
      write_json(self.ledger_path(run_id, str(obj.get("fingerprint"))), self.ledger_record(obj))
    return path

  def ledger_record(self, obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` with this machine's work-dir path replaced by `<work_dir>` in its strings."""
    root = str(self.root)
    return {k: v.replace(root, "<work_dir>") if isinstance(v, str) else v
            for k, v in obj.items()}

  def export_to_ledger(self, runs: list[plan_lib.Run], fingerprints: Mapping[str, str]
                       ) -> list[str]:
    """Copies work-dir results valid for the current configuration that the ledger lacks or
    holds differently (results written before the ledger existed); returns their run ids."""
    if self.ledger is None:
      return []
    out = []
    for run in runs:
      fp = fingerprints[run.run_id]
      obj, problem = _read(self.result_path(run.run_id))
      if obj is None or problem or result_problem(obj, run.run_id, fp):
        continue
      record = self.ledger_record(obj)
      led, _ = _read(self.ledger_path(run.run_id, fp))
      if led != record:
        write_json(self.ledger_path(run.run_id, fp), record)
        out.append(run.run_id)
    return out

  def progress_path(self, run_id: str, fingerprint: str) -> Path:
    assert self.ledger is not None
    return self.ledger / "progress" / f"{run_id}.{fingerprint}.json"

  def validation_history(self, run_id: str) -> list[tuple[int, float]]:
    """(step, validation F1) from the run's log, by step (a step logged twice: the last)."""
    try:
      text = self.log_path(run_id).read_text(errors="replace")
    except OSError:
      return []
    return sorted({int(st): float(f1) for st, f1 in VALIDATION_RE.findall(text)}.items())

  def export_progress(self, runs: list[plan_lib.Run], fingerprints: Mapping[str, str]
                      ) -> list[str]:
    """Records in the ledger how far each unfinished train run of this work dir got (last
    checkpoint step, validation F1s, attempts, wall time). A record is only replaced by one
    that got at least as far (a reset machine that restarts the run does not erase the
    figures of the earlier one) and is removed once the run has a result; records of an older
    configuration (another fingerprint) stay, as the ledger's results do. Returns the run ids
    written."""
    if self.ledger is None:
      return []
    out = []
    for run in runs:
      if run.kind != "train":
        continue
      fp = fingerprints[run.run_id]
      path = self.progress_path(run.run_id, fp)
      obj, problem = self.read_result(run.run_id, fp)
      if obj is not None and not problem and result_problem(obj, run.run_id, fp) is None:
        if path.exists():
          path.unlink()
        continue
      step, prog = self.last_step(run.run_id), self.progress(run.run_id)
      if step is None or prog.get("fingerprint") != fp:
        continue
      old = _progress_record(path)
      if old is not None and old["step"] > step:
        continue
      record = {"run_id": run.run_id, "fingerprint": fp, "step": step,
                "validation": [[st, f1] for st, f1 in self.validation_history(run.run_id)
                               if st <= step],
                "attempts": prog.get("attempts"), "wall_secs": prog.get("wall_secs")}
      if old is None or {k: old.get(k) for k in record} != record:
        write_json(path, dict(record, updated_at=time.strftime("%Y-%m-%dT%H:%M:%S")))
        out.append(run.run_id)
    return out

  def progress_note(self, run: plan_lib.Run, fingerprint: str) -> str:
    """What the ledger's progress record adds to the status of an unfinished run: the step an
    earlier machine reached (when the work dir is behind it) and the validation F1s."""
    if self.ledger is None or run.kind != "train":
      return ""
    rec = _progress_record(self.progress_path(run.run_id, fingerprint))
    if rec is None:
      return ""
    parts = []
    here = self.last_step(run.run_id)
    if here is None or here < rec["step"]:
      src = rec.get("recovered_from")
      parts.append(f"an attempt elsewhere reached step {rec['step']:,}"
                   + (f" ({src})" if src else ""))
    val = rec["validation"]
    if len(val) > PROGRESS_SHOWN:  # the last few, and the best when it is earlier
      best = max(val, key=lambda v: v[1])
      val = ([best] if best not in val[-PROGRESS_SHOWN:] else []) + val[-PROGRESS_SHOWN:]
    if val:
      parts.append("validation F1 " + ", ".join(f"{f1:.4g} at step {st:,}" for st, f1 in val)
                   + " (interim, not results)")
    return "; ".join(parts)

  def archive(self, run_id: str, why: str) -> list[Path]:
    """Moves an old result and run dir aside (`.../archive/<run_id>.<time>`); returns them."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    moved = []
    for src, dst in ((self.result_path(run_id),
                      self.root / "results" / "archive" / f"{run_id}.{stamp}.json"),
                     (self.run_dir(run_id), self.root / "runs" / "archive" / f"{run_id}.{stamp}")):
      if src.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
        moved.append(dst)
    if moved:
      write_json(moved[-1] / "ARCHIVED.json" if moved[-1].is_dir() else
                 moved[-1].with_suffix(".why.json"), {"run_id": run_id, "why": why})
    return moved

  # progress
  def progress(self, run_id: str) -> dict[str, Any]:
    path = self.run_dir(run_id) / "progress.json"
    try:
      return json.loads(path.read_text())
    except (OSError, ValueError):
      return {}

  def record_attempt(self, run_id: str, fingerprint: str, wall_secs: float,
                     error: str | None = None, **extra: Any) -> dict[str, Any]:
    """Adds one attempt's wall time (and its error, if any) to the run's progress file."""
    p = self.progress(run_id)
    if p.get("fingerprint") not in (None, fingerprint):
      p = {}
    p.update(fingerprint=fingerprint, attempts=int(p.get("attempts", 0)) + 1,
             wall_secs=float(p.get("wall_secs", 0.0)) + float(wall_secs),
             last_error=error, last_attempt=time.strftime("%Y-%m-%dT%H:%M:%S"), **extra)
    write_json(self.run_dir(run_id) / "progress.json", p)
    return p

  def has_checkpoints(self, run_id: str) -> bool:
    ck = self.model_dir(run_id) / "checkpoints"
    return ck.is_dir() and any(c.name.isdigit() for c in ck.iterdir())

  # status
  def status(self, run: plan_lib.Run, fingerprint: str,
             base_done: bool = True) -> tuple[str, str]:
    """(status, detail) of `run` under its current `fingerprint` (see STATUSES)."""
    if run.skip_reason:
      return "skipped", run.skip_reason
    obj, problem = self.read_result(run.run_id, fingerprint)
    if problem:
      return "invalid", problem
    if obj is not None:
      problem = result_problem(obj, run.run_id, fingerprint)
      if problem is None:
        if run.kind == "cost":
          return "done", f"{obj.get('encoder_tokens'):.0f} encoder tokens"
        return "done", f"F1 {obj['f1']:.4f}"
      if problem.startswith("configuration changed"):
        return "stale", problem
      return "invalid", problem
    held = lock_lib.holder(self.lock_path(run.run_id))
    if held is not None:
      return "running", lock_lib.describe(held)
    prog = self.progress(run.run_id)
    same = prog.get("fingerprint") == fingerprint
    if not base_done:
      return "blocked", f"waits for {' and '.join(run.sources)}"
    # progress files written before preemptions were recorded as such say "preempted ..."
    if same and prog.get("last_error") and not str(prog["last_error"]).startswith("preempted"):
      return "failed", f"attempt {prog.get('attempts')}: {prog['last_error']}"
    if self.has_checkpoints(run.run_id) or (same and prog.get("attempts")):
      step = self.last_step(run.run_id)
      return "interrupted", (f"resumes from step {step:,}" if step is not None
                             else "restarts (no checkpoint yet)")
    return "pending", ""

  def last_step(self, run_id: str) -> int | None:
    ck = self.model_dir(run_id) / "checkpoints"
    if not ck.is_dir():
      return None
    steps = [int(c.name) for c in ck.iterdir() if c.name.isdigit()]
    return max(steps) if steps else None

  def collect(self, runs: list[plan_lib.Run], fingerprints: Mapping[str, str]
              ) -> list[dict[str, Any]]:
    """The valid results of `runs` (plan order), each with its groups from the plan."""
    out = []
    for run in runs:
      obj, problem = self.read_result(run.run_id, fingerprints[run.run_id])
      if obj is None or problem or result_problem(obj, run.run_id,
                                                  fingerprints[run.run_id]) is not None:
        continue
      out.append(dict(obj, groups=list(run.groups)))
    return out
