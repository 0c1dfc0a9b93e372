"""The reproduction store (benchmarks/repro/state.py): run status, archiving, the ledger that
outlives a work dir, result checks and warm starts, in a tmp dir."""

from __future__ import annotations

import json
import math

import pytest

from repro_support import make_result  # first: puts benchmarks/ on sys.path
from repro import plan as plan_lib
from repro import state as state_lib


def test_status_lifecycle(tmp_path, plan):
  store = state_lib.Store(tmp_path)
  run = next(r for r in plan if r.run_id == "persoma_mlp-h10-recency-uem-full")
  fp = run.fingerprint()
  assert store.status(run, fp)[0] == "pending"
  (store.model_dir(run.run_id) / "checkpoints" / "250").mkdir(parents=True)
  st, det = store.status(run, fp)
  assert st == "interrupted" and "250" in det
  store.record_attempt(run.run_id, fp, 2.0, error="exit code 1; see log")
  assert store.status(run, fp)[0] == "failed"
  p = store.record_attempt(run.run_id, fp, 3.0)
  assert p["attempts"] == 2 and p["wall_secs"] == pytest.approx(5.0)
  assert store.status(run, fp)[0] == "interrupted"
  store.write_result(run.run_id, make_result(run, fp, 0.42))
  st, det = store.status(run, fp)
  assert st == "done" and "0.42" in det
  assert store.status(run, "other")[0] == "stale"
  store.write_result(run.run_id, make_result(run, fp, float("nan")))
  assert store.status(run, fp)[0] == "invalid"
  store.result_path(run.run_id).write_text("{not json")
  assert store.status(run, fp)[0] == "invalid"
  skipped = next(r for r in plan if r.skip_reason)
  assert store.status(skipped, skipped.fingerprint())[0] == "skipped"
  dep = next(r for r in plan if r.init_from)
  assert store.status(dep, "x", base_done=False)[0] == "blocked"


def test_archive_moves_never_deletes(tmp_path, plan):
  store = state_lib.Store(tmp_path)
  run = plan[0]
  store.write_result(run.run_id, make_result(run, "old"))
  (store.model_dir(run.run_id)).mkdir(parents=True)
  (store.model_dir(run.run_id) / "config.gin").write_text("x")
  moved = store.archive(run.run_id, "configuration changed")
  assert len(moved) == 2 and all(m.exists() for m in moved)
  assert not store.result_path(run.run_id).exists() and not store.run_dir(run.run_id).exists()
  assert json.loads(moved[0].read_text())["fingerprint"] == "old"


def test_ledger_keeps_results_beyond_the_work_dir(tmp_path, plan):
  ledger = tmp_path / "ledger"
  run = next(r for r in plan if r.run_id == "persoma_mlp-h10-recency-uem-full")
  fp = run.fingerprint()
  first = state_lib.Store(tmp_path / "work1", ledger)
  first.write_result(run.run_id, make_result(run, fp, 0.31, command=f"x {first.root}/runs/m"))
  entry = json.loads((ledger / f"{run.run_id}.{fp}.json").read_text())
  assert entry["f1"] == 0.31 and entry["command"] == "x <work_dir>/runs/m"
  fresh = state_lib.Store(tmp_path / "work2", ledger)  # another machine, same clone
  st, det = fresh.status(run, fp)
  assert st == "done" and "0.31" in det
  assert [r["f1"] for r in fresh.collect([run], {run.run_id: fp})] == [0.31]
  assert fresh.status(run, "another-config")[0] == "pending"  # a stale entry does not count
  assert state_lib.Store(tmp_path / "work2").status(run, fp)[0] == "pending"  # no ledger
  # a work-dir result written before the ledger existed is exported once, then left alone
  other = next(r for r in plan if r.run_id == "rule-h5-recency")
  ofp = other.fingerprint()
  state_lib.Store(tmp_path / "work2").write_result(other.run_id, make_result(other, ofp, 0.2))
  assert fresh.export_to_ledger([run, other], {run.run_id: fp, other.run_id: ofp}) == [
      other.run_id]
  assert fresh.export_to_ledger([run, other], {run.run_id: fp, other.run_id: ofp}) == []
  assert json.loads((ledger / f"{other.run_id}.{ofp}.json").read_text())["f1"] == 0.2
  # another configuration of the same run adds an entry beside the first
  first.write_result(run.run_id, make_result(run, "seed1", 0.35))
  assert fresh.status(run, fp)[1] == "F1 0.3100" and fresh.status(run, "seed1")[1] == "F1 0.3500"


def test_result_problem_names_the_issue():
  assert "fingerprint" in state_lib.result_problem({"run_id": "a", "fingerprint": "x"}, "a", "y")
  assert "f1" in state_lib.result_problem({"run_id": "a", "fingerprint": "y", "f1": 2.0,
                                           "precision": 0.1, "recall": 0.1}, "a", "y")
  assert state_lib.result_problem({"run_id": "a", "fingerprint": "y", "kind": "cost",
                                   "encoder_tokens": 3}, "a", "y") is None
  assert not math.isnan(plan_lib.inputs_length_for(1))
  assert plan_lib.inputs_length_for(64) == 64 and plan_lib.inputs_length_for(65) == 128


def test_warm_start_copies_the_last_checkpoint_and_never_overwrites(tmp_path):
  from repro import execute  # pylint: disable=g-import-not-at-top
  src = tmp_path / "src" / "model"
  for d in ("checkpoints/4", "checkpoints/8", "best/8"):
    (src / d).mkdir(parents=True)
    (src / d / "state").write_text(d)
  (src / "environment.json").write_text('[{"step": 0, "cpu": "A"}]')
  dst = tmp_path / "dst" / "model"
  rec = execute.warm_start(src, dst, "src-run", 8)
  assert (dst / "environment.json").read_text() == '[{"step": 0, "cpu": "A"}]'  # steps 0..8
  assert sorted(p.name for p in (dst / "checkpoints").iterdir()) == ["8"]
  assert (dst / "checkpoints/8/state").read_text() == "checkpoints/8"
  assert (dst / "best/8/state").read_text() == "best/8"
  assert json.loads((dst / execute.WARM_START_FILE).read_text()) == rec
  assert rec["from"] == "src-run" and rec["step"] == 8
  assert not [p for p in dst.parent.iterdir() if p.name.startswith(".tmp")]
  with pytest.raises(FileExistsError, match="already holds checkpoints"):
    execute.warm_start(src, dst, "src-run", 8)
  with pytest.raises(FileNotFoundError, match="no checkpoint at step 12"):
    execute.warm_start(src, tmp_path / "other" / "model", "src-run", 12)


def test_warm_start_on_new_targets_leaves_the_best_and_clears_the_selection(tmp_path):
  from repro import execute  # pylint: disable=g-import-not-at-top
  src = tmp_path / "src" / "model"
  for d in ("checkpoints/8", "best/8"):
    (src / d / "meta").mkdir(parents=True)
    (src / d / "state").write_text(d)
    (src / d / "meta" / "metadata").write_text(json.dumps(
        {"best_f1": 0.52, "best_step": 8, "bad_evals": 1, "stopped_early": False, "seed": 2,
         "step": 8}))
  dst = tmp_path / "dst" / "model"
  rec = execute.warm_start(src, dst, "src-run", 8, new_targets=True)
  assert rec["new_targets"] is True and rec["step"] == 8
  assert not (dst / "best").exists()
  assert (dst / "checkpoints/8/state").read_text() == "checkpoints/8"
  meta = json.loads((dst / "checkpoints/8/meta/metadata").read_text())
  assert meta == {"best_f1": None, "best_step": None, "bad_evals": 0, "stopped_early": False,
                  "seed": 2, "step": 8}
  # the source is untouched
  assert json.loads((src / "checkpoints/8/meta/metadata").read_text())["best_f1"] == 0.52
  (src / "checkpoints/8/meta/metadata").unlink()
  with pytest.raises(FileNotFoundError, match="no checkpoint meta to clear"):
    execute.warm_start(src, tmp_path / "other" / "model", "src-run", 8, new_targets=True)
  assert not (tmp_path / "other" / "model" / "checkpoints").exists()
  assert not [p for p in (tmp_path / "other").iterdir() if p.name.startswith(".tmp")]
