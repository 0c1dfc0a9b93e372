"""Running one planned run: `persoma-train` subprocesses, their marginal decoding, baselines.

A train run is `python -m persoma.train.main_train <gin file> <bindings> --gin.MODEL_DIR=...`
in a subprocess (its own gin state and memory), its output appended to `runs/<id>/log.txt` and
condensed on the console. Restarting the same command resumes from the run's last checkpoint
(the runner does that); Ctrl-C sends the child SIGTERM so it saves before exiting (children of
`--jobs` workers start through `repro.workers.start`, which an interrupt stops). A longer
run of a finished configuration (group 7) can start from that run's last checkpoint
(`warm_start`), which the runner then resumes like its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from repro import plan as plan_lib
from repro import state as state_lib
from repro import workers
from repro.workers import Preempted, run_parallel  # noqa: F401  (re-exported)

ECHO_RE = re.compile(r"( step \d+/\d+ | validation step |Resuming|Early stopping|Parameters:|"
                     r"Traceback|Error|error:|WARNING: training mode|Test results|preempted|"
                     r"Environment:|another environment)")
NOISE_RE = re.compile(r"(cuInit|cuda_platform|cudart_stub)")
PARAMS_RE = re.compile(r"Parameters: ([\d,]+) trainable of ([\d,]+) total")
BEST_RE = re.compile(r"best step (\d+|None)")
SIZE_RE = re.compile(r" model (\w+)/\w+, mode ")

Echo = Callable[[str], None]


def _last_json(lines: list[str]) -> dict | None:
  for line in reversed(lines):
    line = line.strip()
    if line.startswith("{") and line.endswith("}"):
      try:
        obj = json.loads(line)
      except ValueError:
        continue
      if isinstance(obj, dict):
        return obj
  return None


WARM_START_FILE = "warm_start.json"


def warm_start(src_model_dir: Path, dst_model_dir: Path, source_run: str,
               step: int, new_targets: bool = False) -> dict[str, Any]:
  """Copies the checkpoints (`checkpoints/`, `best/`) of `source_run`, which trained to its
  last step `step`, and its record of where it ran (`environment.json`) into the empty
  `dst_model_dir`, and records that in `warm_start.json` beside it. Returns the record.
  Raises FileExistsError if `dst_model_dir` holds checkpoints and FileNotFoundError if the
  source has no checkpoint at `step`.

  Only valid when the two runs differ in TRAIN_STEPS alone and the learning-rate schedule does
  not depend on it (`plan.BUDGET_FREE_SCHEDULES`): the runner's resume is exact, so the longer
  run continues the very trajectory it would have followed from step 0. With `new_targets`
  (a run that continues the source's params, optimiser state and data order on other targets,
  group 10) the source's best checkpoints are not copied and the copied step's best-checkpoint
  and early-stopping record is cleared (`persoma.train.checkpointing.clear_selection`): the
  run picks its best step among its own validations.
  """
  src_ck = src_model_dir / "checkpoints" / str(step)
  if not src_ck.is_dir():
    raise FileNotFoundError(f"{source_run}: no checkpoint at step {step} under "
                            f"{src_model_dir / 'checkpoints'}")
  dst_ck = dst_model_dir / "checkpoints"
  if dst_ck.is_dir() and any(dst_ck.iterdir()):
    raise FileExistsError(f"{dst_ck} already holds checkpoints; not warm-starting over them")
  dst_model_dir.mkdir(parents=True, exist_ok=True)
  tmp = dst_model_dir.parent / f".tmp_warm_{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  try:
    shutil.copytree(src_ck, tmp / "checkpoints" / str(step))
    if new_targets:
      from persoma.train import checkpointing  # pylint: disable=g-import-not-at-top
      checkpointing.clear_selection(tmp / "checkpoints" / str(step))
    elif (src_model_dir / "best").is_dir():
      shutil.copytree(src_model_dir / "best", tmp / "best")
    from persoma.train import environment  # pylint: disable=g-import-not-at-top
    if (src_model_dir / environment.FILENAME).is_file():  # the trajectory's steps 0..step
      shutil.copy2(src_model_dir / environment.FILENAME, tmp / environment.FILENAME)
    record = {"from": source_run, "step": step,
              "copied_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if new_targets:
      record["new_targets"] = True
    state_lib.write_json(tmp / WARM_START_FILE, record)
    for name in ("best", environment.FILENAME, WARM_START_FILE, "checkpoints"):
      # checkpoints last: they mark it done
      if (tmp / name).exists():
        os.replace(tmp / name, dst_model_dir / name)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return record


def train_command(run: plan_lib.Run, model_dir: Path,
                  initial_checkpoint: str | None = None) -> list[str]:
  """The `persoma-train` command of a train run (run from the repository root)."""
  cmd = [sys.executable, "-m", "persoma.train.main_train"] + run.gin_args()
  if initial_checkpoint:
    cmd.append(f"--gin.INITIAL_CHECKPOINT_PATH={initial_checkpoint!r}")
  cmd.append(f"--gin.MODEL_DIR={str(model_dir)!r}")
  return cmd


def _pinned(cpu: int | None) -> tuple[dict[str, str], Callable[[], None] | None]:
  """Environment and pre-exec hook of a child process pinned to core `cpu` (None: not pinned)."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  if cpu is None:
    return env, None
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1").strip()
  return env, lambda: os.sched_setaffinity(0, {cpu})


def _pump(proc: subprocess.Popen, log: Any, lines: list[str], echo: Echo, run_id: str,
          show: Callable[[str], bool]) -> None:
  """Copies a child's output, line by line as it comes, to `log` and `lines`, and echoes the
  lines `show` accepts to the console."""
  assert proc.stdout is not None
  for line in proc.stdout:
    log.write(line)
    lines.append(line.rstrip("\n"))
    if show(line):
      echo(f"  [{run_id}] {line.rstrip()}")


def _log_stopped(log: Any, what: str = "marginal decoding") -> None:
  """Marks in a run's log that the driver stopped its evaluation (`what`)."""
  log.write(f"===== {what} stopped (driver interrupted) at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")


BEAM_ECHO_RE = re.compile(r"( (beam|sample) x\d+ | threshold \d|Traceback|Error|error:)")
MARGINAL_KEYS = ("f1", "precision", "recall", "f1_liked", "f1_disliked")


def _marginals_record(out: dict[str, Any], wall: float | None,
                      decode_method: str) -> dict[str, Any]:
  top1 = f"{decode_method}_top1"  # the best beam, or the most likely sample
  return {"num_decodes": out["num_decodes"], "decode_method": decode_method,
          "threshold": out["threshold"], "validation_f1": out.get("validation_f1"),
          "step": out["step"], "users": out.get("users"), "wall_secs": wall,
          **{k: out.get(k) for k in MARGINAL_KEYS},
          top1: {k: out[top1].get(k) for k in MARGINAL_KEYS}}


def marginals_command(model_dir: Path, num_decodes: int,
                      decode_method: str = "beam") -> list[str]:
  """The `persoma-eval` command of `run_marginals` (run from the repository root)."""
  return [sys.executable, "-m", "persoma.train.main_eval", f"--checkpoint={model_dir}",
          "--split=test", f"--num_decodes={num_decodes}", f"--decode_method={decode_method}",
          "--json"]


def run_eval(run: plan_lib.Run, store: state_lib.Store, cmd: list[str], what: str,
             cpu: int | None = None, echo: Echo = print) -> tuple[int, dict[str, Any] | None]:
  """Runs a `persoma-eval` command of a finished run (`what`: 'marginal decoding', ...), its
  output appended to the run's log and its progress lines echoed; returns its exit code and
  the JSON of its last lines (None if there is none). A driver stopped meanwhile stops it
  (the evaluation has nothing to save) and re-raises, or raises `Preempted`."""
  env, preexec = _pinned(cpu)
  lines: list[str] = []
  with open(store.log_path(run.run_id), "a", buffering=1) as log:  # `tail -f` follows it
    log.write(f"\n===== {what} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n$ "
              + " ".join(cmd) + "\n")
    with workers.start(cmd, cwd=plan_lib.REPO, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env=env,
                       preexec_fn=preexec) as proc:
      try:
        _pump(proc, log, lines, echo, run.run_id, lambda l: bool(BEAM_ECHO_RE.search(l)))
      except BaseException:  # Ctrl-C or SIGTERM to the driver: left running, the evaluation
        proc.terminate()     # would slow whatever the machine does next
        proc.wait()
        _log_stopped(log, what)
        raise
    rc = proc.returncode
    if workers.stopping():  # SIGTERM from an interrupted run_parallel: as Ctrl-C above
      _log_stopped(log, what)
      raise Preempted(f"{run.run_id}: {what} stopped (driver interrupted); the same "
                      "command runs it again")
  return rc, _last_json(lines[-20:])


def run_marginals(run: plan_lib.Run, store: state_lib.Store, num_decodes: int, step: int | None,
                  *, decode_method: str = "beam", echo: Echo = print,
                  cpu: int | None = None) -> dict[str, Any] | None:
  """Thresholded label marginals of a finished train run's best checkpoint over K beams or K
  temperature-1 samples (`decode_method`): `persoma-eval --split test --num_decodes K
  --decode_method M` (the cut tuned on the validation users), output appended to the run's
  log. Reuses the result file of an earlier such evaluation of the same step. Returns `{'f1',
  'precision', 'recall', 'f1_liked', 'f1_disliked', 'threshold', 'num_decodes',
  'decode_method', 'validation_f1', 'step', 'users', 'wall_secs', '<M>_top1': {...}}`, or None
  (after echoing why) when the best checkpoint is gone or the evaluation fails: the greedy
  result stands.
  """
  if decode_method not in plan_lib.DECODES_NOUN:
    raise ValueError(f"decode_method must be one of {sorted(plan_lib.DECODES_NOUN)}, got "
                     f"{decode_method!r}")
  best = store.model_dir(run.run_id) / "best"
  if step is not None:  # the file `marginals_command` writes (persoma-eval's own file name)
    from persoma.train import main_eval  # pylint: disable=g-import-not-at-top
    done = best / f"eval_test_step{step}{main_eval.result_suffix(decode_method, num_decodes)}.json"
    if done.exists():
      out = json.loads(done.read_text())
      if "threshold" in out and f"{decode_method}_top1" in out:
        return _marginals_record(out, None, decode_method)
  if not best.is_dir():
    echo(f"  [{run.run_id}] no best checkpoint under {best}: no marginal decoding")
    return None
  echo(f"  [{run.run_id}] thresholded marginals over {num_decodes} "
       f"{plan_lib.DECODES_NOUN[decode_method]} (validation, then test users) ...")
  t0 = time.time()
  rc, out = run_eval(run, store, marginals_command(store.model_dir(run.run_id), num_decodes,
                                                   decode_method), "marginal decoding", cpu,
                     echo)
  if rc != 0 or out is None or "threshold" not in out or f"{decode_method}_top1" not in out:
    echo(f"  [{run.run_id}] marginal decoding failed (exit code {rc}); the greedy "
         f"result stands; log: {store.log_path(run.run_id)}")
    return None
  if step is not None and out.get("step") != step:
    echo(f"  [{run.run_id}] marginal decoding scored step {out.get('step')}, not the result's "
         f"best step {step}: not recorded")
    return None
  return _marginals_record(out, time.time() - t0, decode_method)


def run_train(run: plan_lib.Run, store: state_lib.Store, fingerprint: str, *,
              initial_checkpoint: str | None = None, echo: Echo = print,
              verbose: bool = False, settings: plan_lib.Settings | None = None,
              cpu: int | None = None) -> dict[str, Any]:
  """Trains (or resumes) `run`; returns its result dict (written by the caller).

  With `cpu` set, the runner is pinned to that core with single-threaded XLA (several runs
  side by side use a small CPU host better than one run on all cores).

  Raises RuntimeError (with the log path) when the runner fails, and `Preempted` (a
  RuntimeError) when it saved and exited on SIGTERM, after recording the attempt in the run's
  progress file (a preempted run then counts as interrupted, not failed); KeyboardInterrupt
  after the child saved.
  """
  model_dir = store.model_dir(run.run_id)
  model_dir.parent.mkdir(parents=True, exist_ok=True)
  cmd = train_command(run, model_dir, initial_checkpoint)
  log_path = store.log_path(run.run_id)
  lines: list[str] = []
  t0 = time.time()
  env, preexec = _pinned(cpu)
  with open(log_path, "a", buffering=1) as log:  # line-buffered: `tail -f` follows the run
    log.write(f"\n===== attempt at {time.strftime('%Y-%m-%d %H:%M:%S')}\n$ "
              + " ".join(cmd) + "\n")
    log.flush()
    proc = workers.start(cmd, cwd=plan_lib.REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=preexec)
    show = lambda l: verbose or bool(ECHO_RE.search(l) and not NOISE_RE.search(l))
    try:
      _pump(proc, log, lines, echo, run.run_id, show)
      rc = proc.wait()
    except KeyboardInterrupt:
      echo(f"  [{run.run_id}] interrupted: asking the runner to save (SIGTERM) ...")
      proc.send_signal(signal.SIGTERM)
      # its last lines (the save) still go to the log; a runner that does not exit in 300 s
      # is killed
      drain = threading.Thread(target=_pump, args=(proc, log, lines, echo, run.run_id, show),
                               daemon=True)
      drain.start()
      drain.join(timeout=300)
      if drain.is_alive():
        proc.kill()
        drain.join(timeout=10)
      proc.wait()
      store.record_attempt(run.run_id, fingerprint, time.time() - t0, error=None,
                           interrupted=True)
      raise
  wall = time.time() - t0
  out = _last_json(lines[-20:])
  if out and out.get("preempted"):  # SIGTERM: the runner saved; the same command resumes
    store.record_attempt(run.run_id, fingerprint, wall, error=None, interrupted=True)
    raise Preempted(f"{run.run_id}: preempted at step {out.get('step')} (checkpoint "
                    f"saved; the same command resumes it); log: {log_path}")
  if rc != 0 or out is None or "f1" not in out:
    why = f"exit code {rc}" if rc != 0 else "no result line"
    store.record_attempt(run.run_id, fingerprint, wall, error=f"{why}; see {log_path}")
    raise RuntimeError(f"{run.run_id}: {why}; log: {log_path}")
  prog = store.record_attempt(run.run_id, fingerprint, wall, error=None)
  text = "\n".join(lines)
  params = PARAMS_RE.findall(text)
  best = BEST_RE.findall(text)
  size = SIZE_RE.findall(text)
  eval_json = model_dir / "eval_test.json"
  test = json.loads(eval_json.read_text()) if eval_json.exists() else out
  warm_json = model_dir / WARM_START_FILE
  warm = json.loads(warm_json.read_text()) if warm_json.exists() else None
  return {
      "run_id": run.run_id, "fingerprint": fingerprint, "kind": "train", "method": run.method,
      "label": run.label, "history_size": run.history_size, "sampler": run.sampler,
      "fmt": run.fmt, "mode": run.mode or "full", "init_from": run.init_from,
      "resample_labels": run.resample_labels, "train_resamples": run.train_resamples,
      "train_steps": run.train_steps, "warm_start": warm,
      "f1": float(test["f1"]), "precision": float(test["precision"]),
      "recall": float(test["recall"]), "users": test.get("users"),
      "f1_liked": test.get("f1_liked"), "f1_disliked": test.get("f1_disliked"),
      "best_step": int(best[-1]) if best and best[-1] != "None" else test.get("step"),
      "steps_trained": store.last_step(run.run_id),
      "model_size": size[-1] if size else None,
      "params_trainable": int(params[-1][0].replace(",", "")) if params else None,
      "params_total": int(params[-1][1].replace(",", "")) if params else None,
      "bindings": {k: plan_lib.gin_literal(v) for k, v in run.bindings},
      "gin_file": run.gin_file, "initial_checkpoint": initial_checkpoint,
      "wall_secs": prog["wall_secs"], "attempts": prog["attempts"],
      "dataset": (settings.dataset if settings else None),
      "synthetic": bool(settings and settings.dataset == "synthetic"),
      "command": " ".join(cmd), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
      "environment": _environment(model_dir, run.run_id, echo),
  }


def _environment(model_dir: Path, run_id: str, echo: Echo) -> list[dict[str, Any]] | None:
  """The runner's record of where the run ran (`persoma.train.environment.read`: [] when the
  runner wrote none; None, echoed, when it is unreadable)."""
  from persoma.train import environment  # pylint: disable=g-import-not-at-top
  try:
    return environment.read(str(model_dir))
  except ValueError as e:
    echo(f"  [{run_id}] {e}; the result is recorded without it")
    return None


_DATA_CACHE: dict[tuple, Any] = {}


def load_data(settings: plan_lib.Settings):
  """The pruned dataset the tasks use (cached per process)."""
  key = (settings.dataset_name, settings.data_dir)
  if key not in _DATA_CACHE:
    import persoma.data as data_lib  # pylint: disable=g-import-not-at-top
    if settings.dataset == "synthetic":
      _DATA_CACHE[key] = data_lib.load_dataset("synthetic")
    else:
      _DATA_CACHE[key] = data_lib.load_dataset(settings.dataset_name, settings.data_dir,
                                               descriptions="auto")
  return _DATA_CACHE[key]


def run_baseline(run: plan_lib.Run, store: state_lib.Store, fingerprint: str,
                 settings: plan_lib.Settings) -> dict[str, Any]:
  """`persoma.baselines.evaluate_baseline` on the test split of the run's task."""
  from persoma import baselines  # pylint: disable=g-import-not-at-top
  t0 = time.time()
  res = baselines.evaluate_baseline(run.method, load_data(settings), split="test",
                                    history_size=run.history_size, sampler=run.sampler,
                                    seed=settings.seed)
  prog = store.record_attempt(run.run_id, fingerprint, time.time() - t0)
  return {
      "run_id": run.run_id, "fingerprint": fingerprint, "kind": "baseline",
      "method": run.method, "label": run.label, "history_size": run.history_size,
      "sampler": run.sampler, "fmt": "", "mode": "", "f1": float(res["f1"]),
      "precision": float(res["precision"]), "recall": float(res["recall"]),
      "f1_liked": res.get("f1_liked"), "f1_disliked": res.get("f1_disliked"),
      "users": res["users"], "skipped_users": res.get("skipped_users"),
      "dataset": res.get("dataset"), "synthetic": bool(res.get("synthetic")),
      "wall_secs": prog["wall_secs"], "attempts": prog["attempts"],
      "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
      **({"fitted": res["fitted"]} if "fitted" in res else {}),  # rule_tuned: what was fitted
  }
