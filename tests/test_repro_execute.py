"""Running one reproduction run (benchmarks/repro/execute.py, budget.py): cores per worker,
the runner subprocess and its attempts, marginal decoding, cost runs and the budget, with fake
runners (no training)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from repro_support import fake_tokens  # first: puts benchmarks/ on sys.path
import repro_support
import reproduce
from repro import state as state_lib
from repro import targets


def test_run_parallel_gives_each_worker_its_own_core(monkeypatch):
  import threading
  import time as time_lib
  from repro import execute
  active: dict[int, int] = {}
  overlap = []
  lock = threading.Lock()

  def fn(item, cpu):
    with lock:
      assert cpu not in active  # no two running items share a core
      active[cpu] = item
      overlap.append(len(active))
    time_lib.sleep(0.05)
    with lock:
      del active[cpu]
    return item * 10

  monkeypatch.setattr(execute.os, "cpu_count", lambda: 8)
  out = dict(execute.run_parallel(list(range(6)), fn, 2))
  assert out == {i: i * 10 for i in range(6)} and max(overlap) == 2
  seen = []
  assert [r for _, r in execute.run_parallel([3, 1, 2], lambda x, c: seen.append(c) or x, 1)
          ] == [3, 1, 2]
  assert seen == [None] * 3


FAKE_RUNNER = r"""
import json, os, sys
model_dir = sys.argv[1]
os.makedirs(os.path.join(model_dir, "checkpoints", "6"), exist_ok=True)
print("00:00:01 I Task persoma_x_h5_recency_uem (x), model small/persoma, mode full")
print("00:00:02 I Parameters: 1,234 trainable of 5,678 total (mode full)")
print("00:00:03 I step 6/6 loss 1.0 | 1 steps/s")
if sys.argv[2] == "fail":
    sys.exit(3)
if sys.argv[2] == "preempt":
    print(json.dumps({"preempted": True, "step": 6}))
    sys.exit(143)
res = {"f1": 0.61, "precision": 0.7, "recall": 0.6, "split": "test", "step": 4, "users": 280,
       "f1_liked": 0.66, "f1_disliked": 0.52}
json.dump(res, open(os.path.join(model_dir, "eval_test.json"), "w"))
with open(os.path.join(model_dir, "environment.json"), "w") as f:
    f.write('{"bad": ' if sys.argv[2] == "bad_env" else '[{"step": 0, "cpu": "Fake CPU"}]')
print("Test results on persoma_x (x), 280 users, best step 4:")
print(json.dumps(res))
"""


def test_run_train_parses_runner_output_and_records_attempts(tmp_path, monkeypatch, plan):
  from repro import execute  # pylint: disable=g-import-not-at-top
  store = state_lib.Store(tmp_path)
  run = next(r for r in plan if r.run_id == "persoma_mlp-h5-recency-uem-full")
  fp = run.fingerprint()
  script = tmp_path / "fake_runner.py"
  script.write_text(FAKE_RUNNER)
  mode = {"v": "fail"}
  monkeypatch.setattr(execute, "train_command", lambda r, d, init=None: [
      sys.executable, str(script), str(d), mode["v"]])
  echoed: list[str] = []
  with pytest.raises(RuntimeError, match="exit code 3"):
    execute.run_train(run, store, fp, echo=echoed.append)
  assert store.status(run, fp)[0] == "failed"
  assert any("step 6/6" in e for e in echoed)  # progress lines reach the console
  mode["v"] = "preempt"  # SIGTERM: saved and exited; not a failure, the next start resumes
  with pytest.raises(RuntimeError, match="preempted at step 6"):
    execute.run_train(run, store, fp, echo=echoed.append)
  assert store.status(run, fp) == ("interrupted", "resumes from step 6")
  store.record_attempt(run.run_id, fp, 1.0, error="preempted (checkpoint saved); see log")
  assert store.status(run, fp)[0] == "interrupted"  # as older progress files record it
  mode["v"] = "ok"
  res = execute.run_train(run, store, fp, echo=echoed.append)
  assert res["f1"] == 0.61 and res["users"] == 280 and res["best_step"] == 4
  assert (res["f1_liked"], res["f1_disliked"]) == (0.66, 0.52)  # per side, from eval_test.json
  assert res["params_trainable"] == 1234 and res["params_total"] == 5678
  assert res["model_size"] == "small" and res["steps_trained"] == 6 and res["attempts"] == 4
  assert res["environment"] == [{"step": 0, "cpu": "Fake CPU"}]  # the runner's record
  assert state_lib.result_problem(res, run.run_id, fp) is None
  assert "===== attempt" in store.log_path(run.run_id).read_text()
  mode["v"] = "bad_env"  # an unreadable record costs the result nothing but the record
  res = execute.run_train(run, store, fp, echo=echoed.append)
  assert res["environment"] is None and res["f1"] == 0.61
  assert any("environment.json: not readable as JSON" in e for e in echoed)


SIGTERM_RUNNER = r"""
import json, os, signal, sys, time
def saved(signum, frame):
    print(json.dumps({"preempted": True, "step": 3}), flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, saved)
print("00:00:01 I step 3/6 loss 1.0 | 1 steps/s", flush=True)
os.kill(os.getppid(), signal.SIGTERM)  # the batch system stops the driver
time.sleep(60)
sys.exit(9)  # never reached when the driver passes the signal on
"""


def test_sigterm_to_the_driver_saves_the_runner_and_records_the_attempt(tmp_path, monkeypatch,
                                                                         plan):
  from repro import execute  # pylint: disable=g-import-not-at-top
  store = state_lib.Store(tmp_path)
  run = next(r for r in plan if r.run_id == "persoma_mlp-h5-recency-uem-full")
  fp = run.fingerprint()
  script = tmp_path / "sigterm_runner.py"
  script.write_text(SIGTERM_RUNNER)
  monkeypatch.setattr(execute, "train_command", lambda r, d, init=None: [
      sys.executable, str(script)])
  before = signal.getsignal(signal.SIGTERM)
  with pytest.raises(KeyboardInterrupt):
    with reproduce.sigterm_as_interrupt():
      execute.run_train(run, store, fp, echo=lambda _: None)
  assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
  prog = store.progress(run.run_id)
  assert prog["attempts"] == 1 and prog["wall_secs"] > 0 and prog.get("interrupted") is True
  assert prog["wall_secs"] < 30  # the runner saved on the passed-on signal, no 60 s sleep
  assert '"preempted": true' in store.log_path(run.run_id).read_text()


FAKE_EVAL = r"""
import json, os, sys
model_dir, mode, method = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"00:00:01 I {method} x4 validation: 8/10 examples")
if mode == "fail":
    sys.exit(2)
res = {"f1": 0.65, "precision": 0.6, "recall": 0.7, "f1_liked": 0.7, "f1_disliked": 0.5,
       "split": "test", "step": int(mode), "users": 280, "num_decodes": 4, "threshold": 0.2,
       "validation_f1": 0.63, f"{method}_top1": {"f1": 0.6, "precision": 0.6, "recall": 0.6,
                                                  "f1_liked": 0.6, "f1_disliked": 0.4}}
json.dump(res, open(os.path.join(model_dir, "best", f"eval_test_step{mode}_{method}4.json"),
                    "w"))
print(json.dumps(res))
"""


def test_run_marginals_records_reuses_and_never_breaks_a_finished_run(tmp_path, monkeypatch,
                                                                      plan):
  from repro import execute  # pylint: disable=g-import-not-at-top
  store = state_lib.Store(tmp_path)
  run = next(r for r in plan if r.run_id == "persoma_mlp-h5-recency-uem-full")
  echoed: list[str] = []
  # no best checkpoint (lost with its machine): nothing to decode, no error
  assert execute.run_marginals(run, store, 4, 4, echo=echoed.append) is None
  assert "no best checkpoint" in echoed[-1]
  (store.model_dir(run.run_id) / "best").mkdir(parents=True)
  script = tmp_path / "fake_eval.py"
  script.write_text(FAKE_EVAL)
  mode = {"v": "fail"}
  calls: list[int] = []

  def fake_command(model_dir, k, decode_method):
    calls.append((k, decode_method))
    return [sys.executable, str(script), str(model_dir), mode["v"], decode_method]

  monkeypatch.setattr(execute, "marginals_command", fake_command)
  assert execute.run_marginals(run, store, 4, 4, echo=echoed.append) is None
  assert "failed (exit code 2)" in echoed[-1] and "greedy result stands" in echoed[-1]
  mode["v"] = "3"  # scores another step than the result's best: not recorded
  assert execute.run_marginals(run, store, 4, 4, echo=echoed.append) is None
  assert "not the result's best step 4" in echoed[-1]
  mode["v"] = "4"
  m = execute.run_marginals(run, store, 4, 4, echo=echoed.append)
  assert (m["f1"], m["threshold"], m["num_decodes"], m["step"]) == (0.65, 0.2, 4, 4)
  assert m["beam_top1"]["f1"] == 0.6 and m["validation_f1"] == 0.63 and m["wall_secs"] > 0
  log = store.log_path(run.run_id).read_text()
  assert "===== marginal decoding" in log and "beam x4 validation" in log
  assert any("beam x4 validation: 8/10" in e for e in echoed)  # progress reaches the console
  n = len(calls)
  again = execute.run_marginals(run, store, 4, 4, echo=echoed.append)  # its file is reused
  assert len(calls) == n and again["f1"] == 0.65 and again["wall_secs"] is None
  # samples: their own result file (the beam file is not taken for it), and the record says so
  m = execute.run_marginals(run, store, 4, 4, decode_method="sample", echo=echoed.append)
  assert calls[-1] == (4, "sample") and len(calls) == n + 1
  assert m["decode_method"] == "sample" and m["sample_top1"]["f1"] == 0.6
  assert "beam_top1" not in m and "marginals over 4 samples" in "\n".join(echoed)
  assert any("sample x4 validation: 8/10" in e for e in echoed)
  assert execute.run_marginals(run, store, 4, 4, decode_method="sample")["wall_secs"] is None
  with pytest.raises(ValueError, match="decode_method"):
    execute.run_marginals(run, store, 4, 4, decode_method="greedy")


def test_an_interrupted_driver_stops_its_marginal_decoding(tmp_path, monkeypatch, plan):
  from repro import execute  # pylint: disable=g-import-not-at-top
  store = state_lib.Store(tmp_path)
  run = next(r for r in plan if r.run_id == "persoma_mlp-h5-recency-uem-full")
  pid_file = repro_support.slow_decoding(tmp_path, monkeypatch, store, run)

  def pump_then_interrupt(proc, *args, **kwargs):  # SIGTERM reaches the driver mid-decoding
    while not (pid_file.exists() and pid_file.read_text()):  # the child has started
      time.sleep(0.05)
    raise KeyboardInterrupt("signal 15")

  monkeypatch.setattr(execute, "_pump", pump_then_interrupt)
  with pytest.raises(KeyboardInterrupt):
    execute.run_marginals(run, store, 4, 4, echo=lambda _: None)
  pid = int(pid_file.read_text())
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    left_running = False  # terminated and reaped
  else:
    left_running = True
    os.kill(pid, signal.SIGKILL)
  assert not left_running
  assert "marginal decoding stopped (driver interrupted)" in store.log_path(run.run_id).read_text()


def test_marginals_command_asks_persoma_eval_for_the_decoding(tmp_path):
  from repro import execute  # pylint: disable=g-import-not-at-top
  cmd = execute.marginals_command(tmp_path, 64, "sample")
  assert cmd[1:3] == ["-m", "persoma.train.main_eval"] and f"--checkpoint={tmp_path}" in cmd
  assert "--decode_method=sample" in cmd and "--num_decodes=64" in cmd
  assert "--decode_method=beam" in execute.marginals_command(tmp_path, 16)


def test_cost_runs_count_the_task_prompt_for_text_and_persoma(program_env, monkeypatch):
  base, _, _, _, _ = program_env
  prog = reproduce.Program(reproduce.parse_args(base))
  timed: list[list[str]] = []

  def fake_step_time(args, batch, steps, predict):
    timed.append(list(args))
    return {"step_secs": 0.5, "compile_secs": 1.0, "size": "mini", "inputs_length": 30}

  monkeypatch.setattr(reproduce.measure, "step_time", fake_step_time)
  prompt = int(reproduce.gin_default("TASK_PROMPT_LENGTH"))
  text = prog.run_cost(prog.by_id["cost-textprompt-h10"], "fp")
  assert text["task_prompt_tokens"] == prompt
  assert text["encoder_tokens"] == prompt + fake_tokens(10, "uem") - 5.0  # mean_test
  length = int(timed[-1][-1].split("=")[1])  # --gin.INPUTS_LENGTH=<padded text length>
  assert text["encoder_length"] == prompt + length
  mlp = prog.run_cost(prog.by_id["cost-persoma_mlp-h10"], "fp")
  assert mlp["task_prompt_tokens"] == prompt and mlp["encoder_tokens"] == 10 + prompt + 21
  assert targets.encoder_tokens(text) == text["encoder_tokens"]
  short = prog.run_cost(prog.by_id["cost-textprompt-h10-title_score"], "fp")  # its own format
  assert short["fmt"] == "title_score"
  assert short["encoder_tokens"] == prompt + fake_tokens(10, "title_score") - 5.0
  assert "--gin.FORMAT='title_score'" in timed[-1]


def test_budget_projects_every_train_run_from_cached_measurements(program_env, monkeypatch,
                                                                 capsys):
  base, _, _, work, _ = program_env
  key = json.dumps(["persoma_mlp", 50, "uem", "full", 24, None, 8, "synthetic"])
  state_lib.write_json(work / "measure" / "step_times.json", {key: {
      "step_secs": 2.0, "predict_secs": 1.0, "compile_secs": 9.0, "batch": 8,
      "encoder_length": 94, "method": "persoma_mlp"}})

  def no_measuring(*a, **k):
    raise AssertionError("budget re-measured a cached configuration")

  monkeypatch.setattr(reproduce.measure, "step_time", no_measuring)
  assert reproduce.main(base + ["--budget", "--budget_batch", "8", "--max_steps", "100",
                                "--eval_every", "50", "--only",
                                "persoma_mlp-h50-recency-uem-full"]) == 0
  out = capsys.readouterr().out
  line = next(l for l in out.splitlines() if l.startswith("persoma_mlp-h50-recency-uem-full "))
  assert "measured @b8" in line and " 8.00 " in line  # 2 s at batch 8 -> 8 s at batch 32
  est = next(l for l in out.splitlines() if l.startswith("persoma_mlp-h100-recency-uem-full "))
  assert "est. from persoma_mlp L=94" in est
  prog = reproduce.Program(reproduce.parse_args(base + ["--max_steps", "100"]))
  n_train = sum(r.kind == "train" and not r.skip_reason for r in prog.plan)
  assert n_train > 30  # every train run of the program, not only the measured one
  assert f"TOTAL projected wall time of the {n_train} train runs" in out


def test_tuned_rule_baseline_records_what_it_fitted(tmp_path, plan):
  from repro import execute  # pylint: disable=g-import-not-at-top
  from repro_support import settings  # pylint: disable=g-import-not-at-top
  store = state_lib.Store(tmp_path)
  got = {}
  for name in ("rule_tuned", "rule"):
    run = next(r for r in plan if r.run_id == f"{name}-h10-recency")
    got[name] = execute.run_baseline(run, store, run.fingerprint(), settings())
    json.dumps(got[name])  # the ledger writes it as JSON
  fitted = got["rule_tuned"]["fitted"]
  assert set(fitted) == {"liked", "disliked"} and set(fitted["liked"]) == {
      "threshold", "max_count", "min_count", "shrink"}
  assert "fitted" not in got["rule"] and got["rule"]["users"] == got["rule_tuned"]["users"]
