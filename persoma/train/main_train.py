"""`persoma-train`: gin-configured sharded training (T5X's flag style).

  persoma-train --gin_file=gin/perceiver_frozen.gin --gin.MODEL_DIR="'/tmp/run'" \
      [--gin_file=...] [--gin.ADAPTER="'mlp'"] [--gin_search_paths=DIR,...]

Writes into MODEL_DIR: `config.gin` (the resolved configuration, written once the data is
loaded and the model built; a dir holding a different one is refused), `checkpoints/`, `best/`,
TensorBoard events, `eval_test.json` (F1, precision, recall, and `f1_liked` / `f1_disliked` per
side of the 38 classes), `environment.json` (CPU, devices and mesh, library versions and the
embedding table's sha256 of the first start and of each resume that runs elsewhere;
`persoma.train.environment`). Restarting the same command resumes from the newest readable
checkpoint with the same data order. On SIGTERM (TPU preemption) it saves the current step,
prints `{"preempted": true, ...}` and exits 143.
A value persoma's validation refuses (`--gin.ADAPTER="'mlpp'"`, `--gin.HISTORY_SIZE=0`, ...)
is reported as one `error: ...` line, before any data is read, and nothing is written.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Callable, Sequence

from persoma.train import partitioning


def train(*, model_dir: str, experiment: Any, partitioner: Any = None, optimizer: Any = None,
          trainer: Any = None, checkpoint: Any = None, baselines: Sequence[str] = (),
          writer: str = "tensorboard", on_start: Callable[[], None] | None = None,
          readout: str = "labels") -> dict[str, Any]:
  """Trains `experiment` into `model_dir`; returns the summary (with `'test'` metrics).

  The configuration is checked before any data is read (`persoma.errors.ConfigError` for a
  bad value); `on_start` runs once the data is loaded and the model built, just before the
  first step (persoma-train writes `MODEL_DIR/config.gin` there, so a run that fails to
  start leaves nothing behind that would refuse the corrected command).

  Args:
    model_dir: output directory (gin macro MODEL_DIR).
    experiment: `persoma.train.experiment.Experiment` (task + model + mode).
    partitioner: `persoma.train.partitioning.Partitioner` (default: all devices on `data`).
    optimizer: `persoma.train.optim.OptimizerConfig`.
    trainer: `persoma.train.trainer.TrainerConfig`.
    checkpoint: `persoma.train.checkpointing.CheckpointConfig`.
    baselines: names from `persoma.baselines` to score on the same test split and print
      beside the model (e.g. ('counting', 'rule')).
    writer: 'tensorboard' (clu TensorBoard events + log lines) or 'none'.
    on_start: called (no arguments) once training is about to start.
    readout: 'labels' (score the labels each decode states) or 'rationale' (a run with
      `PersomaDataConfig.target_rationale`: score the run's label rule applied to the rationale
      each decode writes, `persoma.metrics.readout`), for validation (so for early stopping
      and the best checkpoint) and test alike; gin `main_train.train.readout`.
  """
  from persoma.train import checkpointing, loop, optim  # pylint: disable=g-import-not-at-top
  from persoma.train import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  from persoma.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  t0 = time.time()
  partitioner = partitioner or partitioning.Partitioner()
  optimizer = optimizer or optim.OptimizerConfig()
  trainer_cfg = trainer or trainer_lib.TrainerConfig()
  checkpoint = checkpoint or checkpointing.CheckpointConfig()
  _validate(experiment, partitioner, trainer_cfg, baselines, writer, readout)
  task = experiment.task
  task.install()
  score_fn = None
  if readout == "rationale":
    from persoma.metrics import readout as readout_lib  # pylint: disable=g-import-not-at-top
    from persoma.seqio_tasks import config as config_lib  # pylint: disable=g-import-not-at-top
    score_fn = readout_lib.from_data_config(config_lib.get_config()).score_texts
  logging.info("Task %s (%s), model %s/%s, mode %s", task.task_name, task.dataset,
               experiment.model.size, experiment.model.composition, experiment.training_mode)
  splits = {s: task.load(s) for s in ("train", "validation", "test")}
  for s, d in splits.items():
    logging.info("split %s: %d examples", s, len(d.targets))
  vocab = task.vocabulary()
  example = splits["train"].rows(0, 1)
  model = experiment.build_model(example, vocab.vocab_size, vocab)
  tr = trainer_lib.Trainer(
      model, partitioner, optimizer, trainer_cfg, model_dir, example,
      training_mode=experiment.training_mode,
      load_initial_params=experiment.initial_params_loader(),
      decode_fn=experiment_lib.make_decoder(vocab), score_fn=score_fn)
  if on_start is not None:
    on_start()
  mw = None
  if writer == "tensorboard":
    from clu import metric_writers  # pylint: disable=g-import-not-at-top
    import jax  # pylint: disable=g-import-not-at-top
    mw = metric_writers.create_default_writer(
        os.path.join(model_dir, "tensorboard"), just_logging=jax.process_index() > 0,
        asynchronous=False)
  summary = loop.fit(tr, splits["train"], splits["validation"], splits["test"],
                     checkpoint, writer=mw, environment=_environment(task, partitioner))
  if mw is not None:
    mw.flush()
  if summary.get("preempted"):
    return summary
  test = summary["test"]
  read = ", labels read from the rationale" if readout == "rationale" else ""
  rows = [(f"persoma ({experiment.model.composition}/{experiment.model.adapter}, "
           f"{experiment.training_mode}{read})", test)]
  if baselines:
    from persoma import baselines as baselines_lib  # pylint: disable=g-import-not-at-top
    data = task.dataset_object()
    seed = getattr(task.data_config, "seed", 0) if task.data_config is not None else 0
    for name in baselines:
      rows.append((f"baseline {name}", baselines_lib.evaluate_baseline(
          name, data, split="test", history_size=task.history_size, sampler=task.sampler,
          seed=seed)))
    summary["baselines"] = {name: r for name, (_, r) in zip(baselines, rows[1:])}
  synthetic = " (SYNTHETIC data)" if task.slug == "synthetic" else ""
  width = max([44] + [len(name) for name, _ in rows])
  lines = [f"Test results on {task.task_name}{synthetic}, {test['users']} users, "
           f"best step {summary.get('best_step')}:",
           f"  {'method':{width}s} {'F1':>7s} {'P':>7s} {'R':>7s}"]
  for name, r in rows:
    lines.append(f"  {name:{width}s} {r['f1']:7.4f} {r['precision']:7.4f} {r['recall']:7.4f}")
  lines.append(f"  wall time {time.time() - t0:.1f}s")
  summary["table"] = "\n".join(lines)
  return summary


def _environment(task: Any, partitioner: Any) -> dict[str, Any] | None:
  """`persoma.train.environment.describe` of this run (None, logged, where it fails: the record
  is informational and never stops a run)."""
  from persoma.train import environment  # pylint: disable=g-import-not-at-top
  try:
    return environment.describe(dict(partitioner.mesh.shape), task.embeddings_identity())
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("Could not describe the run's environment (%s: %s); not recording it",
                    type(e).__name__, e)
    return None


def _validate(experiment: Any, partitioner: Any, trainer_cfg: Any, baselines: Sequence[str],
              writer: str, readout: str = "labels") -> None:
  """The cheap checks `train` runs before reading data (ConfigError naming the gin macro)."""
  from persoma import baselines as baselines_lib  # pylint: disable=g-import-not-at-top
  from persoma import errors  # pylint: disable=g-import-not-at-top
  experiment.validate()
  partitioner.check_batch_size(trainer_cfg.batch_size, "BATCH_SIZE")
  partitioner.check_batch_size(trainer_cfg.eval_batch_size, "EVAL_BATCH_SIZE")
  unknown = [b for b in baselines if b not in baselines_lib.BASELINES]
  if unknown:
    raise errors.ConfigError(f"BASELINES={tuple(baselines)!r}: unknown {unknown}; valid "
                             f"baselines: {list(baselines_lib.BASELINES)}")
  if writer not in ("tensorboard", "none"):
    raise errors.ConfigError(f"train.writer={writer!r}: expected 'tensorboard' or 'none'")
  if readout not in ("labels", "rationale"):
    raise errors.ConfigError(f"train.readout={readout!r}: expected 'labels' or 'rationale'")


def main(argv: Sequence[str] | None = None) -> int:
  from persoma.train import gin_cli  # pylint: disable=g-import-not-at-top
  p, bindings, rest = gin_cli.gin_parser("persoma-train", __doc__, argv)
  p.add_argument("--verbose", action="store_true", help="also log orbax INFO lines")
  a = p.parse_args(rest)
  gin_cli.setup_logging(a.verbose)
  partitioning.maybe_initialize_distributed()
  import gin  # pylint: disable=g-import-not-at-top
  if not a.gin_file:
    raise SystemExit("error: persoma-train needs --gin_file (e.g. gin/quickstart.gin)")
  gin_cli.parse(a.gin_file, list(a.gin_bindings) + bindings, a.gin_search_paths)
  try:
    model_dir = gin.query_parameter("%MODEL_DIR")
  except ValueError:
    model_dir = None
  if not model_dir or not isinstance(model_dir, str):
    raise SystemExit("error: set the output directory: --gin.MODEL_DIR=\"'/path/to/run'\"")
  import jax  # pylint: disable=g-import-not-at-top
  from persoma import errors  # pylint: disable=g-import-not-at-top
  config_str = gin.config_str()
  chief = jax.process_index() == 0
  if chief:  # refuse a dir of another run now; config.gin is written once training starts
    gin_cli.refuse_other_config(model_dir, config_str)

  def write_config():
    if chief:
      gin_cli.check_model_dir_config(model_dir, config_str)

  from persoma.train import main_train as this  # pylint: disable=g-import-not-at-top
  try:  # (`this.train`, not `train`: this module is __main__ under python -m)
    summary = gin.get_configurable(this.train)(on_start=write_config)
  except errors.ConfigError as e:
    raise SystemExit(f"error: {errors.one_line(e)}") from None
  if summary.get("preempted"):
    print(json.dumps({"preempted": True, "step": summary.get("step")}), flush=True)
    return 143  # 128 + SIGTERM: not finished; the same command resumes
  print(summary["table"], flush=True)
  print(json.dumps({k: summary["test"][k] for k in
                    ("f1", "precision", "recall", "split", "step", "users")}), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
