"""Shared helpers of the reproduction-harness tests (tests/test_repro_*.py): the benchmarks/
import path, synthetic settings with fake token counts, the plan and a fake-executor program
fixture, and fake results. No training, no MovieLens needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "benchmarks") not in sys.path:
  sys.path.insert(0, str(REPO / "benchmarks"))

import reproduce  # noqa: E402  pylint: disable=g-import-not-at-top
from repro import plan as plan_lib  # noqa: E402  pylint: disable=g-import-not-at-top


def fake_tokens(n: int, fmt: str) -> int:
  """~70 tokens per rendered item: N=50 does not fit 2048 tokens, N<=10 does."""
  return 70 * n + (0 if fmt == "title_score" else 20)


def settings(**kw) -> plan_lib.Settings:
  """Program settings on the synthetic dataset (overridden by `kw`)."""
  return plan_lib.Settings(**{"dataset": "synthetic", **kw})


def synthetic_plan() -> list[plan_lib.Run]:
  """The plan on synthetic settings with fake token counts (the `plan` fixture)."""
  return plan_lib.build_plan(settings(), fake_tokens)


def slow_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store, run) -> Path:
  """Makes `run` (with a best checkpoint dir in `store`) decode its marginals by a child that
  writes its pid to the returned file, prints one progress line and sleeps 60 s."""
  from repro import execute  # pylint: disable=g-import-not-at-top
  (store.model_dir(run.run_id) / "best").mkdir(parents=True)
  pid_file = tmp_path / "pid"
  script = tmp_path / "slow_eval.py"
  script.write_text("import os, time\n"
                    f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                    "print('beam x4 validation: 1/10 examples', flush=True)\n"
                    "time.sleep(60)\n")
  monkeypatch.setattr(execute, "marginals_command",
                      lambda model_dir, k, method: [sys.executable, str(script)])
  return pid_file


def make_result(run, fp, f1=0.5, **kw):
  """A result JSON of `run` as the executor writes it, with one F1 for F1, precision, recall."""
  return {"run_id": run.run_id, "fingerprint": fp, "kind": run.kind, "method": run.method,
          "label": run.label, "history_size": run.history_size, "sampler": run.sampler,
          "fmt": run.fmt, "mode": run.mode, "init_from": run.init_from, "f1": f1,
          "precision": f1, "recall": f1, "users": 10, "wall_secs": 3.0, "attempts": 1, **kw}


def make_ensemble_result(run, fp, f1=0.5):
  """An ensemble's result as repro.ensembles writes it: members at `f1` - 0.02, the majority
  vote picked (best validation F1) at `f1`."""
  scores = {k: f1 for k in ("f1", "precision", "recall", "f1_liked", "f1_disliked")}
  readouts = {"majority": dict(scores, validation_f1=0.5),
              "tuned": dict(scores, f1=f1 - 0.01, validation_f1=0.49, threshold=0.33),
              "consensus": dict(scores, f1=f1 + 0.01, validation_f1=0.48)}
  return make_result(run, fp, f1, members=list(run.members), readout="rationale",
                     member_scores=[dict(scores, f1=f1 - 0.02)] * len(run.members),
                     readouts=readouts, pick="majority", validation_f1=0.5,
                     steps=[700] * len(run.members))


def program_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
  """reproduce.Program on synthetic settings with fake token counts and a fake executor (the
  `program_env` fixture). Returns (base argv, executed run ids, run ids made to fail, work dir,
  tmp_path)."""
  monkeypatch.setattr(reproduce.measure, "text_token_stats", lambda s, pairs: {
      f"{n}/{f}": {"max": fake_tokens(n, f), "mean_test": fake_tokens(n, f) - 5.0,
                   "examples": 9} for n, f in pairs})
  monkeypatch.setattr(reproduce.measure, "instruction_tokens", lambda s: 21)
  calls: list[str] = []
  fail: set[str] = set()

  def fake_execute(self, run, cpu=None):
    calls.append(run.run_id)
    fp = self.fp[run.run_id]
    if run.run_id in fail:
      self.store.record_attempt(run.run_id, fp, 1.0, error="boom")
      raise RuntimeError("boom")
    if run.kind == "cost":
      return {"run_id": run.run_id, "fingerprint": fp, "kind": "cost", "method": run.method,
              "label": run.label, "history_size": run.history_size, "encoder_tokens": 30.0,
              "step_secs": 0.1}
    f1 = 0.2 + run.history_size / 500 + (0.1 if run.method.startswith("persoma") else 0)
    if run.kind == "ensemble":
      return make_ensemble_result(run, fp, f1)
    return make_result(run, fp, f1, synthetic=True)

  monkeypatch.setattr(reproduce.Program, "execute", fake_execute)
  work = tmp_path / "work"
  base = ["--dataset", "synthetic", "--work_dir", str(work), "--docs_dir",
          str(tmp_path / "docs")]
  return base, calls, fail, work, tmp_path


def fake_results():
  """Results of three methods over the four history sizes, a text run and two cost runs."""
  rows = []
  for m, f1s in (("rule", (0.10, 0.20, 0.54, 0.72)), ("persoma_mlp", (0.30, 0.40, 0.58, 0.75)),
                 ("uem", (0.3, 0.2, 0.4, 0.5))):
    for n, f1 in zip(plan_lib.HISTORY_SIZES, f1s):
      rows.append({"run_id": f"{m}-{n}", "kind": "baseline" if m == "rule" else "train",
                   "method": m, "label": plan_lib.METHOD_LABELS[m], "history_size": n,
                   "sampler": "recency", "fmt": "uem", "mode": "full", "f1": f1,
                   "precision": f1, "recall": f1, "users": 300, "groups": ["history"],
                   **({"f1_liked": f1 + 0.05, "f1_disliked": f1 - 0.05} if n == 50 else {})})
  rows.append({"run_id": "textprompt-10", "kind": "train", "method": "textprompt",
               "label": "Text prompting", "history_size": 10, "sampler": "recency",
               "fmt": "uem", "mode": "full", "f1": 0.41, "precision": 0.4, "recall": 0.4,
               "users": 300, "groups": ["history"]})
  for m, tok, st in (("textprompt", 900.0, 1.0), ("persoma_mlp", 60.0, 0.2)):
    rows.append({"run_id": f"cost-{m}-10", "kind": "cost", "method": m, "history_size": 10,
                 "encoder_tokens": tok, "task_prompt_tokens": 20, "step_secs": st,
                 "groups": ["cost"], "cost_batch": 8})
  return rows
