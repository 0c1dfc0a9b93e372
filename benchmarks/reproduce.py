"""Reproduce the papers' experiments on real MovieLens 1M (issue 5), resumably, in one command.

  python benchmarks/reproduce.py --data_dir ../shared/movielens          # everything
  python benchmarks/reproduce.py --list                                   # plan + status
  python benchmarks/reproduce.py --only history --only 'persoma_mlp-*'    # a subset
  python benchmarks/reproduce.py --budget --only persoma_mlp-h50-recency-uem-full
  python benchmarks/reproduce.py --plot_only                              # RESULTS.md + PNG
  # smoke run of the harness (synthetic data, tiny T5, a few steps):
  python benchmarks/reproduce.py --dataset synthetic --work_dir /tmp/repro_smoke \
      --model_size tiny --max_steps 4 --eval_every 2 --max_eval_examples 16 --encoder hashing

After each train run its best checkpoint is also scored with thresholded label marginals over
16 beams (`--num_decodes`, 0: none; the cut tuned on the validation users), or over 64
temperature-1 samples for runs with rationale targets (`--num_samples`; 0: beams there too),
kept in the run's result beside the greedy figures; `--add_marginals` does the same for
finished runs whose best checkpoint is still in the work dir and whose marginals are missing or
of another decoding (they are replaced). A run with rationale targets is also scored with its
labels read from the rationale it writes (repro.readout; validation and test users, greedy),
kept as the result's `readout`; `--add_readout` adds it to finished runs that lack it. An
ensemble run (group 11, repro.ensembles) waits for its member runs and reads their best
checkpoints' greedy decodes as one; their checkpoints must be in the work dir.

Each run is a gin file under `gin/experiments/` plus `--gin.` bindings, with a stable run id
(`--list` prints them). Finished runs (a valid result JSON for the same configuration) are
skipped; interrupted ones resume from their last checkpoint (SIGTERM makes a runner save first,
so a long run can span several sessions; SIGTERM to this driver acts as Ctrl-C: it passes the
signal on, to every runner and decoding of a `--jobs` worker too, waits for the save and
records the attempt's wall time; a marginal decoding in progress is stopped, to run again in
full next time); a longer-trained copy of a
finished run (group 7) starts from that run's last checkpoint; results of an older configuration
are moved to an archive folder, never deleted. Invocations on one work dir may run side by side
(say, one per `--only` subset): each holds a lock per run it works on (`<work_dir>/locks/`, see
repro.lock) and leaves a run another live process holds, and the runs that start from it, to
that process (`--list` shows such a run as running, with the holder). Each finished run's
figures are also kept in the repository's ledger
(`benchmarks/repro/ledger/<run_id>.<fingerprint>.json`, metrics only), so a fresh clone on
another machine skips what has been run and regenerates the page from it; an unfinished train
run leaves the step and validation F1s it reached in `ledger/progress/`, which the page's Not
finished table shows after the work dir is gone. Every result is collected into
`<work_dir>/results.json`, and `docs/RESULTS.md` + `docs/results_f1_vs_history.png` are written
from them (for other data, another seed, size or step count, or `--ledger_dir none`, they go
under `<work_dir>/docs/` unless --docs_dir says).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from repro import budget as budget_lib  # noqa: E402
from repro import cli  # noqa: E402
from repro import base_export, ensembles, execute, measure, plot, readout, report  # noqa: E402
from repro import lock as lock_lib  # noqa: E402
from repro import plan as plan_lib  # noqa: E402
from repro import state as state_lib  # noqa: E402
from repro.cli import check_dirs, docs_dir_for, settings_of  # noqa: E402
from repro.plan import gin_default  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
  return cli.parse_args(argv, doc=__doc__)


class Program:
  """The plan of one invocation with its fingerprints and the work-dir store."""

  def __init__(self, a: argparse.Namespace):
    self.a = a
    self.settings = settings_of(a)
    self.store = state_lib.Store(a.work_dir, a.ledger_dir)
    self.tokens = measure.TokenCache(self.settings, self.store.measure_path("text_tokens"))
    self.tokens.stats([(n, "uem") for n in plan_lib.TEXT_HISTORY_SIZES]
                      + [(plan_lib.BASE_N, f) for f in plan_lib.FORMATS])  # one measuring pass
    self.plan = plan_lib.build_plan(self.settings, self.tokens.max_tokens,
                                    self.tokens.instruction_tokens())
    self.by_id = {r.run_id: r for r in self.plan}
    self.fp: dict[str, str] = {}
    for r in self.plan:  # bases come first in the plan, and members before their ensembles
      self.fp[r.run_id] = r.fingerprint("+".join(self.fp[s] for s in r.sources) or None)
    self.selected = plan_lib.select(self.plan, a.only)

  def status(self, run: plan_lib.Run) -> tuple[str, str]:
    base_done = all(self.status(self.by_id[s])[0] == "done" for s in run.sources)
    return self.store.status(run, self.fp[run.run_id], base_done)

  # ---- publishing -----------------------------------------------------------------------
  def publish(self) -> tuple[Path, Path | None]:
    exported = self.store.export_to_ledger(self.plan, self.fp)
    if exported:
      print(f"ledger {self.store.ledger}: {len(exported)} results added or updated", flush=True)
    self.store.export_progress(self.plan, self.fp)
    results = self.store.collect(self.plan, self.fp)
    state_lib.write_json(self.store.root / "results.json", {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "settings": {k: v for k, v in vars(self.settings).items()}, "runs": results})
    docs = docs_dir_for(self.settings, self.a.docs_dir, self.store.root, self.a.ledger_dir)
    docs.mkdir(parents=True, exist_ok=True)
    png = docs / plot.PLOT_NAME
    title = f"F1 against history size ({self.settings.dataset}, T5 " \
            f"{self.settings.model_size or gin_default('MODEL_SIZE')})"
    has_plot = plot.plot(results, str(png), title)
    missing = [(r.run_id, st, "; ".join(x for x in (det, self.store.progress_note(
                   r, self.fp[r.run_id])) if x))
               for r in self.plan if r.run_id not in {x["run_id"] for x in results}
               for st, det in [self.status(r)]]
    meta = report.program_meta(self.settings, len(self.plan), self.a.work_dir, self.a.jobs)
    n10 = self.tokens.stats([(plan_lib.BASE_N, f) for f in plan_lib.FORMATS])
    meta["text_tokens"] = {f: n10[f"{plan_lib.BASE_N}/{f}"]["mean_test"] for f in plan_lib.FORMATS}
    md = report.render(results, meta=meta,
                       missing=missing, plot_file=plot.PLOT_NAME if has_plot else None)
    (docs / "RESULTS.md").write_text(md)
    return docs / "RESULTS.md", png if has_plot else None

  # ---- listing --------------------------------------------------------------------------
  def list(self) -> None:
    counts: dict[str, int] = {}
    print(f"{'run id':58s} {'kind':8s} {'groups':22s} status")
    for r in self.selected:
      st, det = self.status(r)
      if st == "running":
        det += f" ({lock_lib.hint(self.store.lock_path(r.run_id))})"
      det = "; ".join(x for x in (det, self.store.progress_note(r, self.fp[r.run_id])) if x)
      counts[st] = counts.get(st, 0) + 1
      print(f"{r.run_id:58s} {r.kind:8s} {','.join(r.groups):22s} {st}"
            + (f": {det}" if det else ""))
      if self.a.verbose and r.kind == "train":
        print("    " + " ".join(execute.train_command(r, self.store.model_dir(r.run_id))[1:]))
    print(f"{len(self.selected)} runs: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))

  # ---- running --------------------------------------------------------------------------
  def run_all(self) -> int:
    """Runs the selection in plan order: baselines, then train runs (`--jobs` at a time, each
    pinned to one core; a run waits for its base or the shorter run it continues), then the
    input-cost timings alone."""
    outcomes: dict[str, list[str]] = {"failed": [], "interrupted": []}
    todo = list(enumerate(self.selected, 1))
    t_all = time.time()
    self._last_publish = time.time()
    self._publish_lock = threading.Lock()
    # a run that starts from another (a base, or a shorter run to warm-start from) goes in a
    # later batch than that run, so the chain completes in one invocation
    depth = {x[1].run_id: self._chain_depth(x[1]) for x in todo}
    batches = [[x for x in todo if x[1].kind != "cost" and depth[x[1].run_id] == d]
               for d in range(max(depth.values(), default=0) + 1)]
    batches.append([x for x in todo if x[1].kind == "cost"])
    jobs = max(1, int(self.a.jobs))
    try:
      for batch in batches:
        trains = [x for x in batch if x[1].kind == "train"]
        for i, run in [x for x in batch if x[1].kind != "train"]:
          outcomes.setdefault(self.run_one(i, len(todo), run), []).append(run.run_id)
        for (i, run), outcome in execute.run_parallel(
            trains, lambda x, cpu: self.run_one(x[0], len(todo), x[1], cpu), jobs):
          outcomes.setdefault(outcome, []).append(run.run_id)
    except KeyboardInterrupt:
      print("interrupted; rerun the same command to resume.", flush=True)
      self.publish()
      return 130
    if self.a.dry_run:
      print(f"dry run: {len(todo)} runs considered, nothing run or written")
      return 0
    md, png = self.publish()
    failed, stopped = outcomes["failed"], outcomes["interrupted"]
    busy = outcomes.get("busy", [])
    print(f"{len(todo)} runs considered in {time.time() - t_all:.0f}s; "
          f"{len(failed)} failed or blocked{': ' + ', '.join(failed) if failed else ''}"
          + (f"; {len(stopped)} interrupted (the same command resumes them): "
             + ", ".join(stopped) if stopped else "")
          + (f"; {len(busy)} left to another process (running, or waiting for a run that "
             "is): " + ", ".join(busy) if busy else ""))
    print(f"results: {self.store.root / 'results.json'}\npage: {md}"
          + (f"\nplot: {png}" if png else ""))
    return 1 if failed or stopped or busy else 0

  def _chain_depth(self, run: plan_lib.Run) -> int:
    """How deep `run` waits for planned runs: 0 for a run from scratch, 1 + its sources'
    deepest for a run initialised from a base or warm-started from a shorter run, or for an
    ensemble of members."""
    srcs = self._waits_on(run)
    return 1 + max(map(self._chain_depth, srcs)) if srcs else 0

  def _waits_on(self, run: plan_lib.Run) -> list[plan_lib.Run]:
    """The planned runs `run` starts from: its base or its members, else the shorter run
    it continues (if any)."""
    return [self.by_id[s] for s in run.sources or (run.warm_from,) if s in self.by_id]

  def run_one(self, i: int, total: int, run: plan_lib.Run, cpu: int | None = None) -> str:
    """Runs (or skips) one planned run; returns "ok", "failed" (also: blocked),
    "interrupted" (the runner saved on SIGTERM) or "busy" (another process holds the run's
    lock, or the lock of the run it starts from; see repro.lock)."""
    st, det = self.status(run)
    head = f"[{i}/{total}] {run.run_id}"
    if st == "done":
      print(f"{head}: done ({det}), skipping", flush=True)
      if (self.a.add_marginals or self.a.add_readout) and not self.a.dry_run:
        try:
          with lock_lib.hold(self.store.lock_path(run.run_id)):
            self._maybe_add_marginals(run, cpu)
            self._maybe_add_readout(run, cpu)
        except lock_lib.Busy as e:
          print(f"{head}: not adding marginals or readout, another process holds it: {e}",
                flush=True)
        except execute.Preempted as e:
          print(f"{head}: {e}", flush=True)
          return "interrupted"
      return "ok"
    if st == "running":
      print(f"{head}: running in another process, leaving it: {det} "
            f"({lock_lib.hint(self.store.lock_path(run.run_id))})", flush=True)
      return "busy"
    for src in self._waits_on(run):
      if (src_st := self.status(src))[0] == "running":
        print(f"{head}: waits for {src.run_id}, running in another process: {src_st[1]}",
              flush=True)
        return "busy"
    if st == "skipped":
      print(f"{head}: not runnable here: {det}", flush=True)
      return "ok"
    if st == "blocked":
      waits = " and ".join(s for s in run.sources if self.status(self.by_id[s])[0] != "done")
      print(f"{head}: " + (f"would run once {waits} has a result" if self.a.dry_run
                           else f"blocked: {waits} has no result"), flush=True)
      return "ok" if self.a.dry_run else "failed"
    if self.a.dry_run:
      cmd = (" ".join(execute.train_command(run, self.store.model_dir(run.run_id)))
             if run.kind == "train" else f"({run.kind} measurement in-process)")
      print(f"{head}: {st}{(': ' + det) if det else ''}\n    would run: {cmd}", flush=True)
      return "ok"
    try:
      with lock_lib.hold(self.store.lock_path(run.run_id)):
        return self._run_held(head, run, st, det, cpu)
    except lock_lib.Busy as e:
      print(f"{head}: another process took it first, leaving it: {e}", flush=True)
      return "busy"

  def _run_held(self, head: str, run: plan_lib.Run, st: str, det: str,
                cpu: int | None) -> str:
    """run_one's work once this process holds the run's lock."""
    if st in ("stale", "invalid") or (
        st in ("interrupted", "failed")
        and self.store.progress(run.run_id).get("fingerprint") not in (None, self.fp[run.run_id])):
      moved = self.store.archive(run.run_id, det or st)
      print(f"{head}: {st} ({det}); moved aside: {', '.join(map(str, moved))}", flush=True)
    where = f" on core {cpu}" if cpu is not None else ""
    print(f"{head}: {st}{(' (' + det + ')') if det else ''} -> running{where}", flush=True)
    t0 = time.time()
    try:
      result = self.execute(run, cpu)
    except execute.Preempted as e:
      print(f"{head}: interrupted after {time.time() - t0:.0f}s: {e}", flush=True)
      return "interrupted"
    except Exception as e:  # pylint: disable=broad-except
      print(f"{head}: FAILED after {time.time() - t0:.0f}s: {e}", flush=True)
      return "failed"
    self.store.write_result(run.run_id, result)
    figs = (f"F1 {result['f1']:.4f} P {result['precision']:.4f} R {result['recall']:.4f}"
            if "f1" in result else f"{result.get('encoder_tokens', 0):.1f} encoder tokens")
    print(f"{head}: done in {time.time() - t0:.0f}s: {figs}", flush=True)
    with self._publish_lock:  # workers finish concurrently under --jobs
      if time.time() - self._last_publish > 300:  # keep the page current during long programs
        self.publish()
        self._last_publish = time.time()
    return "ok"

  def execute(self, run: plan_lib.Run, cpu: int | None = None) -> dict[str, Any]:
    fp = self.fp[run.run_id]
    if run.kind == "baseline":
      return execute.run_baseline(run, self.store, fp, self.settings)
    if run.kind == "cost":
      return self.run_cost(run, fp)
    if run.kind == "ensemble":
      return ensembles.run_ensemble(run, self.store, fp)
    init = None
    if run.init_from:
      init = str(base_export.export_base(self.store.model_dir(run.init_from),
                                         self.store.run_dir(run.init_from) / "t5x_export"))
    if run.warm_from:
      self._maybe_warm_start(run)
    result = execute.run_train(run, self.store, fp, initial_checkpoint=init,
                               verbose=self.a.verbose, settings=self.settings, cpu=cpu)
    method, k = self._decoding(run)
    if k:
      m = execute.run_marginals(run, self.store, k, result["best_step"], decode_method=method,
                                cpu=cpu)
      if m is not None:
        result["marginals"] = m
    if run.method in plan_lib.RATIONALE_METHODS:
      r = readout.run_readout(run, self.store, result["best_step"], cpu=cpu)
      if r is not None:
        result["readout"] = r
    return result

  def _decoding(self, run: plan_lib.Run) -> tuple[str, int]:
    """How `run`'s marginals decode: ("beam", --num_decodes), or ("sample", --num_samples)
    for a method with rationale targets (when --num_samples is not 0); a count of 0: none."""
    if run.method in plan_lib.RATIONALE_METHODS and self.a.num_samples:
      return "sample", self.a.num_samples
    return "beam", self.a.num_decodes

  def _maybe_add_marginals(self, run: plan_lib.Run, cpu: int | None) -> None:
    """With `--add_marginals`: scores a finished train run that lacks marginals of the
    decoding `_decoding` gives it, when its best checkpoint is still here, and rewrites its
    result."""
    method, k = self._decoding(run)
    if not (self.a.add_marginals and k and run.kind == "train"
            and not self.a.dry_run and (self.store.model_dir(run.run_id) / "best").is_dir()):
      return
    obj, _ = self.store.read_result(run.run_id, self.fp[run.run_id])
    if obj is None:
      return
    have = obj.get("marginals") or {}
    if (have.get("decode_method", "beam"), have.get("num_decodes")) == (method, k):
      return
    m = execute.run_marginals(run, self.store, k, obj.get("best_step"), decode_method=method,
                              cpu=cpu)
    if m is not None:
      self.store.write_result(run.run_id, dict(obj, marginals=m))
      print(f"  [{run.run_id}] marginals over {k} {plan_lib.DECODES_NOUN[method]}: F1 "
            f"{m['f1']:.4f} (cut {m['threshold']:.2f}; greedy {obj['f1']:.4f})", flush=True)

  def _maybe_add_readout(self, run: plan_lib.Run, cpu: int | None) -> None:
    """With `--add_readout`: the rationale readout of a finished run with rationale targets
    that lacks it, when its best checkpoint is still here; rewrites its result."""
    if not (self.a.add_readout and run.kind == "train" and not self.a.dry_run
            and run.method in plan_lib.RATIONALE_METHODS
            and (self.store.model_dir(run.run_id) / "best").is_dir()):
      return
    obj, _ = self.store.read_result(run.run_id, self.fp[run.run_id])
    if obj is None or obj.get("readout"):
      return
    r = readout.run_readout(run, self.store, obj.get("best_step"), cpu=cpu)
    if r is not None:
      self.store.write_result(run.run_id, dict(obj, readout=r))
      print(f"  [{run.run_id}] rationale readout: F1 {r['f1']:.4f} (stated labels "
            f"{r['stated']['f1']:.4f}); validation {r['validation_f1']:.4f} (stated "
            f"{r['validation_stated_f1']:.4f})", flush=True)

  def _maybe_warm_start(self, run: plan_lib.Run) -> None:
    """Starts `run` from the last checkpoint of `run.warm_from` when that run is done and
    trained to its last step (not stopped early) and `run` has no checkpoint of its own.
    Otherwise a run of the same method trains from step 0; a run of another method (one that
    continues the source on its own targets, group 10) cannot: RuntimeError saying why."""
    src = self.by_id.get(run.warm_from)
    if src is None or self.store.has_checkpoints(run.run_id):
      return
    new_targets = src.method != run.method
    bound = dict(src.bindings)
    steps = int(bound.get("TRAIN_STEPS") or gin_default("TRAIN_STEPS"))
    every = int(bound.get("EVAL_EVERY_STEPS") or gin_default("EVAL_EVERY_STEPS"))
    last = self.store.last_step(src.run_id)
    why = ("it is not done" if self.status(src)[0] != "done" else
           f"its last checkpoint is step {last}, not {steps}" if last != steps else
           # an extra final evaluation would make its early-stopping state differ
           f"its {steps} steps are not a multiple of EVAL_EVERY_STEPS={every}"
           if every and steps % every else None)
    if why and new_targets:
      raise RuntimeError(f"{run.run_id} continues {src.run_id} on its own targets, so it "
                         f"cannot start from step 0, and {src.run_id} is not ready: {why}")
    if why:
      print(f"  [{run.run_id}] training from step 0, not from {src.run_id}: {why}", flush=True)
      return
    rec = execute.warm_start(self.store.model_dir(src.run_id), self.store.model_dir(run.run_id),
                             src.run_id, steps, new_targets=new_targets)
    how = ("its own targets from here; best checkpoint chosen among its own validations"
           if new_targets else
           "same configuration; the learning rate does not depend on TRAIN_STEPS")
    print(f"  [{run.run_id}] starting from step {rec['step']} of {src.run_id} ({how})",
          flush=True)

  def run_cost(self, run: plan_lib.Run, fp: str) -> dict[str, Any]:
    return measure.run_cost(run, fp, self.settings, self.tokens, self.store, self.a.cost_steps)


@contextlib.contextmanager
def sigterm_as_interrupt():
  """Within it, SIGTERM (a batch system's stop, a TPU VM's preemption notice, `kill PID`)
  raises KeyboardInterrupt in the main thread as Ctrl-C does, so the running train run's
  runner is asked to save and the attempt is recorded; later SIGTERMs are ignored while that
  happens. Outside the main thread (no signal handlers there) it does nothing."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def handler(signum, _frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")

  old = signal.signal(signal.SIGTERM, handler)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, old)


def main(argv=None) -> int:
  a = parse_args(argv)
  check_dirs(a)
  try:
    prog = Program(a)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  if a.list:
    prog.list()
    return 0
  if a.plot_only:
    md, png = prog.publish()
    print(f"page: {md}" + (f"\nplot: {png}" if png else "\n(no group-1 results to plot yet)"))
    return 0
  if a.budget:
    return budget_lib.project(prog)
  with sigterm_as_interrupt():
    return prog.run_all()


if __name__ == "__main__":
  sys.exit(main())
