"""The reproduction program (benchmarks/reproduce.py) end to end on synthetic settings with a
fake executor: skip finished, retry failed, resume, stale runs, jobs, the ledger and progress
records, and the published page."""

from __future__ import annotations

import concurrent.futures
import json
import threading

import pytest

from repro_support import REPO, make_result  # first: puts benchmarks/ on sys.path
import reproduce
from repro import plan as plan_lib
from repro import plot


def test_program_skips_finished_and_retries_failed(program_env, capsys):
  base, calls, fail, work, tmp = program_env
  only = ["--only", "history"]
  fail.add("uem-h5-recency-uem-full")
  assert reproduce.main(base + only) == 1
  first = list(calls)
  assert "uem-h5-recency-uem-full" in first
  assert "textprompt-h50-recency-uem-full" not in first  # does not fit: never run
  calls.clear()
  fail.clear()
  assert reproduce.main(base + only) == 0
  assert calls == ["uem-h5-recency-uem-full"]  # only the failed one runs again
  calls.clear()
  assert reproduce.main(base + only) == 0
  assert calls == []
  out = capsys.readouterr().out
  assert "done (F1" in out and "skipping" in out
  results = json.loads((work / "results.json").read_text())["runs"]
  assert {r["run_id"] for r in results} == set(first)
  assert all("history" in r["groups"] for r in results)


def test_a_preempted_run_is_reported_as_interrupted_not_failed(program_env, monkeypatch, capsys):
  base, calls, _, _, _ = program_env
  stopped = "persoma_mlp-h5-recency-uem-full"
  inner = reproduce.Program.execute

  def preempt(self, run, cpu=None):
    if run.run_id != stopped:
      return inner(self, run, cpu)
    self.store.record_attempt(run.run_id, self.fp[run.run_id], 1.0, error=None, interrupted=True)
    raise reproduce.execute.Preempted(f"{run.run_id}: preempted at step 3 (checkpoint saved)")

  monkeypatch.setattr(reproduce.Program, "execute", preempt)
  assert reproduce.main(base + ["--only", "history"]) == 1  # not finished: not a success
  out = capsys.readouterr().out
  assert f"{stopped}: interrupted after" in out and "FAILED" not in out
  assert ("0 failed or blocked; 1 interrupted (the same command resumes them): "
          f"{stopped}") in out
  assert reproduce.main(base + ["--only", stopped, "--list"]) == 0
  row = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(stopped)]
  assert len(row) == 1 and row[0].split()[3] == "interrupted:", row


def test_program_with_jobs_runs_each_run_once_and_bases_before_dependants(program_env):
  base, calls, _, work, _ = program_env
  assert reproduce.main(base + ["--only", "modes", "--only", "cost", "--jobs", "2"]) == 0
  assert len(calls) == len(set(calls))
  dependants = [i for i, c in enumerate(calls) if "-on-" in c]
  assert dependants and calls.index(plan_lib.base_run_id()) < min(dependants)
  costs = [i for i, c in enumerate(calls) if c.startswith("cost-")]
  assert min(costs) > max(i for i, c in enumerate(calls) if not c.startswith("cost-"))
  results = json.loads((work / "results.json").read_text())["runs"]
  assert {r["run_id"] for r in results} == set(calls)


def test_dependants_started_together_share_one_base_export(tmp_path, monkeypatch):
  """Two dependants of one base, started by --jobs 2 threads at once, get the same export."""
  np = pytest.importorskip("numpy")
  ocp = pytest.importorskip("orbax.checkpoint")
  from persoma.models import checkpoints  # pylint: disable=g-import-not-at-top
  (tmp_path / "model" / "best" / "7" / "state").mkdir(parents=True)
  flat = {"encoder/layers_0/kernel": np.ones((2, 3), np.float32),
          "encoder/layers_0/lora_a": np.ones((2, 1), np.float32),
          "adapter/dense/kernel": np.zeros((3,), np.float32)}
  monkeypatch.setattr(checkpoints, "load_t5x_checkpoint", lambda path, prefix: dict(flat))
  barrier = threading.Barrier(2)

  def export(_):
    barrier.wait()
    return reproduce.base_export.export_base(tmp_path / "model", tmp_path / "export")

  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    outs = list(pool.map(export, range(2)))
  assert outs[0] == outs[1] == tmp_path / "export" / "checkpoint_7"
  assert [p.name for p in (tmp_path / "export").iterdir()] == ["checkpoint_7"]  # no tmp left
  with ocp.StandardCheckpointer() as ckptr:
    restored = ckptr.restore(outs[0].resolve())
  assert list(restored["target"]) == ["encoder"]  # the T5 only: no adapter, no LoRA factor
  np.testing.assert_array_equal(restored["target"]["encoder"]["layers_0"]["kernel"],
                                np.ones((2, 3)))
  assert list(restored["target"]["encoder"]["layers_0"]) == ["kernel"]


def test_a_longer_run_waits_for_the_shorter_run_it_continues(program_env, monkeypatch):
  base, calls, _, _, _ = program_env
  batches: list[list[str]] = []
  real = reproduce.execute.run_parallel

  def recording(items, fn, jobs):
    batches.append([run.run_id for _, run in items])
    return real(items, fn, jobs)

  monkeypatch.setattr(reproduce.execute, "run_parallel", recording)
  assert reproduce.main(base + ["--only", "steps", "--jobs", "2"]) == 0
  where = {r: k for k, b in enumerate(batches) for r in b}
  prog = reproduce.Program(reproduce.parse_args(base))
  chained = [r for r in prog.plan if "steps" in r.groups and r.warm_from]
  assert chained and all(where[r.warm_from] < where[r.run_id] for r in chained)
  assert len(calls) == len([r for r in prog.plan if "steps" in r.groups])  # every budget ran


def test_program_reruns_stale_runs_and_archives(program_env):
  base, calls, _, work, _ = program_env
  only = ["--only", "rule-h5-recency"]
  assert reproduce.main(base + only) == 0
  calls.clear()
  assert reproduce.main(base + only + ["--seed", "1"]) == 0  # another configuration
  assert calls == ["rule-h5-recency"]
  assert list((work / "results" / "archive").glob("rule-h5-recency.*.json"))


def test_list_and_dry_run_run_nothing(program_env, capsys):
  base, calls, _, work, _ = program_env
  assert reproduce.main(base + ["--list"]) == 0
  out = capsys.readouterr().out
  assert "persoma_mlp-h50-recency-uem-full" in out and "skipped" in out and "blocked" in out
  assert reproduce.main(base + ["--dry_run", "--only", "persoma_mlp-h5-*"]) == 0
  out = capsys.readouterr().out
  assert "would run:" in out and "persoma.train.main_train" in out
  assert calls == [] and not (work / "results").exists()
  assert not (work / "results.json").exists()


def test_plot_only_writes_page_and_png(program_env):
  base, _, _, work, tmp = program_env
  assert reproduce.main(base + ["--only", "history,cost"]) == 0
  md = (tmp / "docs" / "RESULTS.md").read_text()
  png = tmp / "docs" / plot.PLOT_NAME
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  png.unlink()
  (tmp / "docs" / "RESULTS.md").unlink()
  assert reproduce.main(base + ["--plot_only"]) == 0
  md2 = (tmp / "docs" / "RESULTS.md").read_text()
  assert png.exists()
  for text in (md, md2):
    assert "SYNTHETIC" in text
    assert "0.569†" in text  # the paper's cell beside ours
    assert "| PERSOMA-MLP | 50 |" in text
    assert "stands in for a pretrained checkpoint" in text
    assert "## Not finished" in text  # samplers/formats/modes were not run
    assert "python benchmarks/reproduce.py" in text


def test_fresh_work_dir_resumes_from_the_ledger(program_env, capsys):
  base, calls, _, work, tmp = program_env
  ledger = ["--ledger_dir", str(tmp / "ledger")]
  only = ["--only", "rule-h5-recency,persoma_mlp-h5-recency-uem-full"]
  assert reproduce.main(base + ledger + only) == 0
  assert sorted(calls) == ["persoma_mlp-h5-recency-uem-full", "rule-h5-recency"]
  calls.clear()
  fresh = [a if a != str(work) else str(tmp / "work_elsewhere") for a in base]
  assert reproduce.main(fresh + ledger + only) == 0
  assert calls == []  # both come from the ledger
  md = (tmp / "docs" / "RESULTS.md").read_text()
  assert "| PERSOMA-MLP | 5 |" in md and "| 1 ‡ |" not in md
  # an entry recovered by hand is marked as such on the page
  path, = (tmp / "ledger").glob("persoma_mlp-h5-recency-uem-full.*.json")
  path.write_text(json.dumps(dict(json.loads(path.read_text()), recovered_from="an old page")))
  assert reproduce.main(fresh + ledger + ["--plot_only"]) == 0
  md = (tmp / "docs" / "RESULTS.md").read_text()
  assert "| 1 ‡ |" in md and "Figures recovered from an old page" in md
  capsys.readouterr()
  assert reproduce.main(fresh + ["--ledger_dir", "none", "--list"] + only) == 0
  assert "2 runs: 2 pending" in capsys.readouterr().out  # without the ledger: nothing done


def test_progress_of_unfinished_runs_outlives_the_work_dir(program_env, monkeypatch):
  base, _, _, work, tmp = program_env
  run_id = "persoma_mlp-h5-recency-uem-full"
  args = base + ["--ledger_dir", str(tmp / "ledger"), "--only", run_id]
  finish = reproduce.Program.execute  # the fixture's fake: a result

  def preempted_at(step, validation):
    def execute(self, run, cpu=None):
      ck = self.store.model_dir(run.run_id) / "checkpoints"
      for s in range(50, step + 1, 50):
        (ck / str(s)).mkdir(parents=True, exist_ok=True)
      with open(self.store.log_path(run.run_id), "a") as log:
        for s, f1 in validation:
          log.write(f"12:00:00 I validation step {s}: f1 {f1:.4f} precision 0.1 recall 0.2 "
                    "(9 users)\n")
      self.store.record_attempt(run.run_id, self.fp[run.run_id], 1.0, interrupted=True)
      raise reproduce.execute.Preempted(f"{run.run_id}: preempted at step {step}")
    return execute

  monkeypatch.setattr(reproduce.Program, "execute",
                      preempted_at(1000, [(500, 0.1), (1000, 0.15), (500, 0.12)]))
  assert reproduce.main(args) == 1
  path, = (tmp / "ledger" / "progress").glob(f"{run_id}.*.json")
  rec = json.loads(path.read_text())
  assert rec["step"] == 1000 and rec["validation"] == [[500, 0.12], [1000, 0.15]]
  md = (tmp / "docs" / "RESULTS.md").read_text()
  assert (f"| `{run_id}` | interrupted | resumes from step 1,000; validation F1 0.12 at step "
          "500, 0.15 at step 1,000 (interim, not results) |") in md
  # the machine is reset: a fresh work dir restarts the run and gets less far
  fresh = [a if a != str(work) else str(tmp / "work2") for a in args]
  monkeypatch.setattr(reproduce.Program, "execute", preempted_at(100, []))
  assert reproduce.main(fresh) == 1
  assert json.loads(path.read_text())["step"] == 1000  # the restart does not erase it
  md = (tmp / "docs" / "RESULTS.md").read_text()
  assert ("resumes from step 100; an attempt elsewhere reached step 1,000; validation F1 0.12 "
          "at step 500") in md
  # a hand-edited record that does not parse as one is ignored, never breaks the page
  for junk in ('{"step": "2261"}', '[1, 2]', '{"step": 5, "validation": [[1, "x"]]}'):
    path.write_text(junk)
    assert reproduce.main(fresh + ["--plot_only"]) == 0
    assert "an attempt elsewhere" not in (tmp / "docs" / "RESULTS.md").read_text()
  path.write_text(json.dumps(rec))
  monkeypatch.setattr(reproduce.Program, "execute", finish)
  assert reproduce.main(fresh) == 0
  assert not path.exists()  # the run has a result: its progress record goes
  assert f"`{run_id}` |" not in (tmp / "docs" / "RESULTS.md").read_text().split("Not finished")[-1]


def test_program_warm_starts_only_from_a_run_that_trained_to_its_end(program_env, capsys):
  base, _, _, work, _ = program_env
  prog = reproduce.Program(reproduce.parse_args(base))
  long_run = next(r for r in prog.plan if r.warm_from and r.resample_labels == "shown")
  short = prog.by_id[long_run.warm_from]
  steps = int(plan_lib.gin_default("TRAIN_STEPS"))
  prog._maybe_warm_start(long_run)  # short run not done: nothing copied
  assert not prog.store.has_checkpoints(long_run.run_id)
  assert "it is not done" in capsys.readouterr().out
  prog.store.write_result(short.run_id, make_result(short, prog.fp[short.run_id], 0.3))
  (prog.store.model_dir(short.run_id) / "checkpoints" / str(steps - 500)).mkdir(parents=True)
  prog._maybe_warm_start(long_run)  # stopped early: its last checkpoint is not the budget
  assert not prog.store.has_checkpoints(long_run.run_id)
  assert f"not {steps}" in capsys.readouterr().out
  (prog.store.model_dir(short.run_id) / "checkpoints" / str(steps)).mkdir()
  prog._maybe_warm_start(long_run)
  assert prog.store.last_step(long_run.run_id) == steps
  assert f"starting from step {steps} of {short.run_id}" in capsys.readouterr().out


def test_a_run_continuing_another_on_new_targets_never_starts_from_step_0(program_env, capsys):
  base, _, _, work, _ = program_env
  prog = reproduce.Program(reproduce.parse_args(base))
  run = next(r for r in prog.plan if r.warm_from and r.method != prog.by_id[r.warm_from].method)
  src = prog.by_id[run.warm_from]
  steps = int(dict(src.bindings)["TRAIN_STEPS"])
  with pytest.raises(RuntimeError, match=f"continues {src.run_id} on its own targets.*not done"):
    prog._maybe_warm_start(run)
  assert not prog.store.has_checkpoints(run.run_id)
  prog.store.write_result(src.run_id, make_result(src, prog.fp[src.run_id], 0.3))
  for d in (f"checkpoints/{steps}", f"best/{steps}"):
    meta = prog.store.model_dir(src.run_id) / d / "meta"
    meta.mkdir(parents=True)
    (meta / "metadata").write_text(json.dumps({"best_f1": 0.3, "best_step": steps,
                                               "bad_evals": 0, "seed": 2, "step": steps}))
  prog._maybe_warm_start(run)
  assert prog.store.last_step(run.run_id) == steps
  assert not (prog.store.model_dir(run.run_id) / "best").exists()
  assert "its own targets from here" in capsys.readouterr().out


def test_add_marginals_fills_finished_runs_and_the_page_shows_them(program_env, capsys):
  base, calls, _, work, tmp = program_env
  only = ["--only", "persoma_mlp-h5-recency-uem-full,persoma_mlp-h10-recency-uem-full"]
  assert reproduce.main(base + only) == 0
  assert "## Thresholded marginals" not in (tmp / "docs" / "RESULTS.md").read_text()
  # h5's best checkpoint survives with a beam result at its best step; h10's is gone
  best = work / "runs" / "persoma_mlp-h5-recency-uem-full" / "model" / "best"
  best.mkdir(parents=True)
  res = json.loads((work / "results" / "persoma_mlp-h5-recency-uem-full.json").read_text())
  res["best_step"] = 7
  (work / "results" / "persoma_mlp-h5-recency-uem-full.json").write_text(json.dumps(res))
  (best / "eval_test_step7_beam4.json").write_text(json.dumps({
      "f1": 0.41, "precision": 0.3, "recall": 0.62, "f1_liked": 0.45, "f1_disliked": 0.2,
      "step": 7, "users": 10, "num_decodes": 4, "threshold": 0.05, "validation_f1": 0.4,
      "beam_top1": {"f1": 0.33, "precision": 0.4, "recall": 0.3}}))
  calls.clear()
  assert reproduce.main(base + only + ["--num_decodes", "4"]) == 0  # not asked: untouched
  assert "marginals" not in json.loads(
      (work / "results" / "persoma_mlp-h5-recency-uem-full.json").read_text())
  assert reproduce.main(base + only + ["--num_decodes", "4", "--add_marginals"]) == 0
  assert calls == []  # finished runs are not retrained
  out = capsys.readouterr().out
  assert "marginals over 4 beams: F1 0.4100 (cut 0.05" in out
  got = json.loads((work / "results" / "persoma_mlp-h5-recency-uem-full.json").read_text())
  assert got["marginals"]["f1"] == 0.41 and got["marginals"]["beam_top1"]["f1"] == 0.33
  assert "marginals" not in json.loads(
      (work / "results" / "persoma_mlp-h10-recency-uem-full.json").read_text())
  page = (tmp / "docs" / "RESULTS.md").read_text()
  assert "## Thresholded marginals" in page
  row = next(l for l in page.splitlines() if l.startswith("| `persoma_mlp-h5-recency-uem-full`")
             and "0.4100" in l)
  assert "0.3300" in row and "0.05 (0.4000)" in row
  with pytest.raises(SystemExit):
    reproduce.main(base + only + ["--num_decodes", "1"])
  # a run with rationale targets is scored over samples (--num_samples); beam marginals it
  # already has are replaced, a beam result file at its step is not taken for them
  rat = "persoma_mlp_rationale-h5-recency-uem-full"
  assert reproduce.main(base + ["--only", rat]) == 0
  rbest = work / "runs" / rat / "model" / "best"
  rbest.mkdir(parents=True)
  path = work / "results" / f"{rat}.json"
  res = json.loads(path.read_text())
  res.update(best_step=7, marginals={"f1": 0.2, "num_decodes": 4, "threshold": 0.1,
                                     "precision": 0.2, "recall": 0.2, "beam_top1": {}})
  path.write_text(json.dumps(res))
  for method, k, f1 in (("beam", 4, 0.3), ("beam", 6, 0.31), ("sample", 4, 0.43),
                        ("sample", 6, 0.44)):
    (rbest / f"eval_test_step7_{method}{k}.json").write_text(json.dumps({
        "f1": f1, "precision": 0.4, "recall": 0.5, "step": 7, "users": 10, "num_decodes": k,
        "threshold": 0.25, "validation_f1": 0.42, f"{method}_top1": {"f1": 0.35}}))
  argv = base + ["--only", rat, "--num_decodes", "4", "--num_samples", "6", "--add_marginals"]
  capsys.readouterr()
  assert reproduce.main(argv) == 0
  assert f"[{rat}] marginals over 6 samples: F1 0.4400 (cut 0.25" in capsys.readouterr().out
  got = json.loads(path.read_text())["marginals"]
  assert (got["decode_method"], got["f1"], got["sample_top1"]["f1"]) == ("sample", 0.44, 0.35)
  row = next(l for l in (tmp / "docs" / "RESULTS.md").read_text().splitlines()
             if l.startswith(f"| `{rat}`") and "0.4400" in l)
  assert "| 6 samples |" in row and "0.3500" in row
  assert reproduce.main(argv) == 0  # has them: nothing more to do
  assert "marginals over" not in capsys.readouterr().out
  # --num_samples 0: beams there too (replacing the samples); --num_decodes 0 leaves beams out
  assert reproduce.main(argv[:-1] + ["--num_decodes", "0", "--add_marginals"]) == 0
  assert "marginals over" not in capsys.readouterr().out
  assert reproduce.main(base + ["--only", rat, "--num_decodes", "6", "--num_samples", "0",
                                "--add_marginals"]) == 0
  assert f"[{rat}] marginals over 6 beams: F1 0.3100" in capsys.readouterr().out
  with pytest.raises(SystemExit):
    reproduce.main(base + only + ["--num_samples", "1"])
