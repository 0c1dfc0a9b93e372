"""Exact resume: a run killed mid-way (SIGKILL), restarted, preempted (SIGTERM, which saves
before exiting), and restarted again with the same command ends with the same parameters
as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

import standin_run

HERE = Path(__file__).resolve().parent
ARGS = ["--steps=12", "--save_every=4", "--eval_every=4", "--sleep=0.15"]


def _start(model_dir):
  return subprocess.Popen([sys.executable, str(HERE / "standin_run.py"), str(model_dir), *ARGS],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))


def _run_until(proc, step, sig):
  """Reads STEP lines until `step`, then sends `sig`; returns (last step seen, stdout, stderr)."""
  seen = 0
  for line in proc.stdout:
    if line.startswith("STEP "):
      seen = int(line.split()[1])
      if seen >= step:
        proc.send_signal(sig)
        break
  out, err = proc.communicate(timeout=120)
  return seen, out, err


def test_killed_and_preempted_run_matches_uninterrupted(tmp_path):
  ref, ref_params = standin_run.main([str(tmp_path / "ref"), *ARGS[:-1]])
  assert ref["step"] == 12
  run = tmp_path / "run"

  seen, _, err = _run_until(_start(run), 6, signal.SIGKILL)
  assert 6 <= seen < 12, err[-2000:]
  steps = sorted(int(d) for d in os.listdir(run / "checkpoints") if d.isdigit())
  assert steps and max(steps) <= seen

  proc = _start(run)
  seen2, out, err = _run_until(proc, 9, signal.SIGTERM)
  assert proc.returncode == 0, err[-3000:]
  assert "Resuming from step" in err
  result = json.loads(out.strip().splitlines()[-1])
  assert result["preempted"] is True
  saved = sorted(int(d) for d in os.listdir(run / "checkpoints") if d.isdigit())
  assert result["step"] in saved and result["step"] >= seen2  # saved the step it stopped at

  # Third start (in-process to save a jax start-up; same code path): runs to the end.
  final, params = standin_run.main([str(run), *ARGS[:-1]])
  assert final["step"] == 12 and final["preempted"] is False
  assert len(final["losses"]) == 12 - result["step"]  # continued, did not restart
  np.testing.assert_allclose(final["losses"], ref["losses"][result["step"]:], rtol=1e-6)
  for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_longer_run_from_a_finished_shorter_run_matches_a_longer_run(tmp_path):
  """The premise of `benchmarks/repro` group 7: with a schedule that ignores TRAIN_STEPS, a run
  of 12 steps that starts from the last checkpoint of a finished 8-step run (its copy, as
  `execute.warm_start` makes it) ends with the parameters of a 12-step run from scratch; with a
  cosine schedule it does not."""
  sys.path.insert(0, str(HERE.parent / "benchmarks"))
  from repro import execute  # pylint: disable=g-import-not-at-top
  common = ["--save_every=4", "--eval_every=4"]
  for schedule, same in (("warmup_constant", True), ("warmup_cosine", False)):
    sched = [f"--schedule={schedule}"]
    ref, ref_params = standin_run.main([str(tmp_path / f"ref_{schedule}"), "--steps=12",
                                        *common, *sched])
    short = tmp_path / f"short_{schedule}"
    done, _ = standin_run.main([str(short), "--steps=8", *common, *sched])
    assert done["step"] == 8
    longer = tmp_path / f"long_{schedule}"
    rec = execute.warm_start(short, longer, "short", 8)
    assert rec["from"] == "short" and rec["step"] == 8
    out, params = standin_run.main([str(longer), "--steps=12", *common, *sched])
    assert out["step"] == 12 and len(out["losses"]) == 4  # continued from step 8
    close = all(np.allclose(x, y, rtol=1e-6, atol=1e-7)
                for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)))
    assert close is same, schedule
    if same:
      np.testing.assert_allclose(out["losses"], ref["losses"][8:], rtol=1e-6)


def test_corrupt_final_checkpoint_is_retrained_and_saved_again(tmp_path, caplog):
  """A finished run whose last periodic (and best) step has truncated data files: the next
  start falls back, sets the unreadable steps aside, retrains and saves the last step again,
  so the start after that has nothing left to do (before, every start retrained it and the
  save was skipped because the step dir existed)."""
  common = ["--steps=8", "--save_every=4", "--eval_every=4"]
  run = tmp_path / "run"
  done, ref_params = standin_run.main([str(run), *common])
  assert done["step"] == 8
  corrupted = [d for d in (run / "checkpoints" / "8", run / "best" / "8") if d.is_dir()]
  for d in corrupted:
    for f in (d / "state").rglob("*"):
      if f.is_file() and "d" in f.relative_to(d / "state").parts[:-1]:
        f.write_bytes(b"")
  with caplog.at_level("WARNING"):
    again, params = standin_run.main([str(run), *common])
  assert len(again["losses"]) == 4  # fell back to step 4 and retrained 5..8
  assert any("Moved unreadable checkpoint" in r.getMessage() for r in caplog.records)
  assert (run / "checkpoints" / "8.unreadable-1").is_dir()
  for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
  third, params = standin_run.main([str(run), *common])
  assert third["losses"] == []  # step 8 was saved readable: nothing to retrain
  for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
