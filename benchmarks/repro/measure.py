"""Measurements the plan and the input-cost group need, with the run's own vocabulary and model.

* `text_token_stats`: tokens of the text-prompting inputs (the rendered history + instruction +
  EOS, exactly what the `_textprompt` tasks feed the encoder) per (N, format): max over all
  splits (decides INPUTS_LENGTH and whether N fits) and mean over the test users.
* `instruction_tokens`: tokens of the PERSOMA task instruction X (+ EOS).
* `step_time` (also `python benchmarks/repro/measure.py --gin_file=... --gin.X=...`): builds a
  run's model exactly as `persoma-train` does and times its jitted train step (and one greedy
  decode batch) on real batches of the task, in a subprocess so gin state and memory stay apart.
* `run_cost`: the result of one `cost` run of the plan (encoder tokens and step time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

if __package__ in (None, ""):  # run as a script: make `repro` importable
  sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from repro import plan as plan_lib  # noqa: E402


def _configure(settings: plan_lib.Settings) -> None:
  from persoma.seqio_tasks import config  # pylint: disable=g-import-not-at-top
  kw: dict[str, Any] = {"data_dir": settings.data_dir, "seed": settings.seed}
  if settings.encoder:
    kw["encoder"] = settings.encoder
  config.configure(**kw)


def vocabulary_file(settings: plan_lib.Settings) -> str:
  """The SentencePiece file the tasks of `settings.dataset` use (trained and cached if new)."""
  from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
  _configure(settings)
  path, _ = tasks.DatasetVocabulary(settings.dataset_name)()
  return str(path)


def _processor(path: str):
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  return spm.SentencePieceProcessor(model_file=path)


def text_token_stats(settings: plan_lib.Settings, pairs: Iterable[tuple[int, str]],
                     max_splits: tuple[str, ...] = ("train", "validation", "test")
                     ) -> dict[str, dict[str, float]]:
  """`{'N/fmt': {'max', 'mean_test', 'examples'}}` of text-prompt encoder tokens (EOS incl.)."""
  from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
  _configure(settings)
  sp = _processor(vocabulary_file(settings))
  out = {}
  for n, fmt in pairs:
    spec = tasks.TaskSpec(settings.dataset, int(n), "recency", fmt, True)
    longest, test_counts, total = 0, [], 0
    for split in max_splits:
      texts = tasks.input_texts(spec, tasks.get_examples(spec, split))
      counts = [len(ids) + 1 for ids in sp.encode(texts)] if texts else []
      total += len(counts)
      longest = max([longest] + counts)
      if split == "test":
        test_counts = counts
    out[f"{n}/{fmt}"] = {"max": longest, "examples": total,
                         "mean_test": statistics.fmean(test_counts) if test_counts else 0.0}
  return out


def instruction_tokens(settings: plan_lib.Settings) -> int:
  """Tokens of the task instruction X plus EOS, with the run's vocabulary."""
  from persoma.seqio_tasks import tasks  # pylint: disable=g-import-not-at-top
  sp = _processor(vocabulary_file(settings))
  return len(sp.encode(tasks.instruction())) + 1


class TokenCache:
  """`text_token_stats` cached in `measure/text_tokens.json`, keyed by settings and vocab."""

  def __init__(self, settings: plan_lib.Settings, path: Path, compute=None):
    self.settings, self.path = settings, path
    self.compute = compute or (lambda pairs: text_token_stats(settings, pairs))
    self.key = json.dumps([settings.dataset, settings.data_dir, settings.seed])
    try:
      data = json.loads(path.read_text())
    except (OSError, ValueError):
      data = {}
    self.table: dict[str, Any] = data.get(self.key, {})

  def _save(self) -> None:
    from repro import state  # pylint: disable=g-import-not-at-top
    try:
      data = json.loads(self.path.read_text())
    except (OSError, ValueError):
      data = {}
    data[self.key] = self.table
    state.write_json(self.path, data)

  def stats(self, pairs: Iterable[tuple[int, str]]) -> dict[str, Any]:
    pairs = list(dict.fromkeys(pairs))
    missing = [(n, f) for n, f in pairs if f"{n}/{f}" not in self.table]
    if missing:
      print(f"measuring text-prompt token lengths with the run's vocabulary: "
            f"{', '.join(f'N={n} {f}' for n, f in missing)} ...", flush=True)
      self.table.update(self.compute(missing))
      self._save()
    return {f"{n}/{f}": self.table[f"{n}/{f}"] for n, f in pairs}

  def instruction_tokens(self) -> int:
    """`instruction_tokens(settings)`, cached like the text lengths."""
    if "instruction" not in self.table:
      self.table["instruction"] = int(instruction_tokens(self.settings))
      self._save()
    return int(self.table["instruction"])

  def max_tokens(self, n: int, fmt: str) -> int:
    return int(self.stats([(n, fmt)])[f"{n}/{fmt}"]["max"])


# ----------------------------------------------------------------------------- step time
def step_time(gin_args: list[str], batch: int, steps: int = 3, predict: bool = True,
              timeout: float = 3600) -> dict[str, Any]:
  """Runs this file as a subprocess on a run's gin flags; returns its JSON figures."""
  cmd = [sys.executable, str(Path(__file__).resolve()), f"--batch={batch}",
         f"--steps={steps}"] + (["--predict"] if predict else []) + gin_args
  proc = subprocess.run(cmd, cwd=plan_lib.REPO, capture_output=True, text=True, timeout=timeout,
                        env=dict(os.environ, PYTHONUNBUFFERED="1"))
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode != 0 or not lines:
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
    raise RuntimeError(f"step-time measurement failed (exit {proc.returncode}):\n{tail}")
  return json.loads(lines[-1])


def _block(x):
  import jax  # pylint: disable=g-import-not-at-top
  return jax.block_until_ready(x)


def _measure_main(argv: list[str] | None = None) -> int:
  """Subprocess body: parse gin, build the run's model, time the train step on real batches."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  from persoma.train import experiment as exp_lib  # pylint: disable=g-import-not-at-top
  from persoma.train import gin_cli, optim, partitioning  # pylint: disable=g-import-not-at-top
  from persoma.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  argv = list(sys.argv[1:] if argv is None else argv)
  bindings, rest = gin_cli.split_gin_args(argv)
  p = argparse.ArgumentParser()
  gin_cli.add_gin_flags(p)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--predict", action="store_true")
  a = p.parse_args(rest)
  tmp = tempfile.mkdtemp(prefix="persoma_steptime_")
  gin_cli.parse(a.gin_file, bindings + [f"MODEL_DIR={tmp!r}"], a.gin_search_paths)
  exp = gin.get_configurable(exp_lib.Experiment)()
  tcfg = gin.get_configurable(trainer_lib.TrainerConfig)()
  ocfg = gin.get_configurable(optim.OptimizerConfig)()
  tcfg = dataclasses.replace(tcfg, batch_size=a.batch, eval_batch_size=a.batch)
  t0 = time.time()
  exp.task.install()
  split = exp.task.load("train")
  vocab = exp.task.vocabulary()
  load_secs = time.time() - t0
  n = len(split.targets)
  if n < a.batch:
    raise SystemExit(f"train split has {n} examples < batch {a.batch}")
  arrays = split.rows(0, a.batch)
  model = exp.build_model(arrays, vocab.vocab_size)
  tr = trainer_lib.Trainer(model, partitioning.Partitioner(), ocfg, tcfg, tmp, arrays,
                           training_mode=exp.training_mode,
                           decode_fn=exp_lib.make_decoder(vocab))
  batches = [split.rows(i * a.batch, (i + 1) * a.batch)
             for i in range(min(a.steps + 1, n // a.batch))]
  t0 = time.time()
  _block(tr.train_step(batches[0])["loss"])
  compile_secs = time.time() - t0
  times = []
  for i in range(a.steps):
    t0 = time.time()
    _block(tr.train_step(batches[(i + 1) % len(batches)])["loss"])
    times.append(time.time() - t0)
  out: dict[str, Any] = {
      "step_secs": statistics.median(times), "step_secs_all": times,
      "compile_secs": compile_secs, "batch": a.batch, "load_secs": load_secs,
      "inputs_length": int(arrays["encoder_input_tokens"].shape[1]),
      "history_size": exp.task.history_size, "composition": exp.model.composition,
      "adapter": exp.model.adapter, "mode": exp.training_mode, "size": exp.model.size,
      "task": exp.task.task_name, "train_examples": n}
  if a.predict:
    tr.predict_tokens(batches[0])
    t0 = time.time()
    tr.predict_tokens(batches[-1])
    out["predict_secs"] = time.time() - t0
  print(json.dumps(out), flush=True)
  return 0


def run_cost(run: plan_lib.Run, fp: str, settings: plan_lib.Settings, tokens: TokenCache,
             store: Any, cost_steps: int) -> dict[str, Any]:
  """The result of a `cost` run: encoder tokens per example (text prompting: the rendered
  history measured with the run's vocabulary; PERSOMA: prefix + task prompt + instruction) and
  the measured train-step time at `settings.cost_batch` (`store` records the attempt)."""
  t0 = time.time()
  n = run.history_size
  out: dict[str, Any] = {"run_id": run.run_id, "fingerprint": fp, "kind": "cost",
                         "method": run.method, "label": run.label, "history_size": n,
                         "sampler": run.sampler, "fmt": run.fmt, "mode": "",
                         "cost_batch": settings.cost_batch}
  args = run.gin_args()
  # the text model has the task prompt too
  prompt = int(plan_lib.gin_default("TASK_PROMPT_LENGTH"))
  if run.method == "textprompt":
    st = tokens.stats([(n, run.fmt)])[f"{n}/{run.fmt}"]
    length = plan_lib.inputs_length_for(st["max"])
    out.update(encoder_tokens=prompt + st["mean_test"], encoder_tokens_max=prompt + st["max"],
               encoder_length=prompt + length, task_prompt_tokens=prompt)
    if length > settings.max_inputs_length:
      out.update(step_secs=None,
                 step_skip_reason=f"L={length} > {settings.max_inputs_length}")
      return _cost_done(run, fp, out, t0, settings, store)
    args = args + [f"--gin.INPUTS_LENGTH={length}"]
  fig = step_time(args, settings.cost_batch, cost_steps, predict=False)
  if run.method != "textprompt":
    instr = tokens.instruction_tokens()
    prefix = n if run.method != "persoma_perceiver" else int(
        plan_lib.gin_default("NUM_LATENTS", ("gin/adapters/perceiver.gin",)))
    out.update(encoder_tokens=float(prefix + prompt + instr), encoder_length=
               prefix + prompt + fig["inputs_length"], instruction_tokens=instr,
               task_prompt_tokens=prompt)
  out.update(step_secs=fig["step_secs"], compile_secs=fig["compile_secs"],
             model_size=fig["size"])
  return _cost_done(run, fp, out, t0, settings, store)


def _cost_done(run, fp, out, t0, settings, store):
  prog = store.record_attempt(run.run_id, fp, time.time() - t0)
  out.update(wall_secs=prog["wall_secs"], attempts=prog["attempts"],
             synthetic=settings.dataset == "synthetic",
             finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
  return out


if __name__ == "__main__":
  sys.exit(_measure_main())
