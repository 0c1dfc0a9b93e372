"""The training loop: periodic validation F1, early stopping, best-checkpoint selection, exact
resume from the newest readable checkpoint, SIGTERM saves, and the final test evaluation of the
best checkpoint, around a `persoma.train.trainer.Trainer`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Mapping

import jax
import numpy as np

from persoma.train import checkpointing as ckpt_lib
from persoma.train import data as data_lib
from persoma.train import environment as env_lib
from persoma.train import trainer as trainer_lib

# Train steps dispatched ahead of the host (JAX dispatch is asynchronous). Two keep the device
# busy; a larger queue only delays a preemption save: SIGTERM is honoured after the queued
# steps have run, and the TPU grace period is short.
MAX_STEPS_IN_FLIGHT = 2


def fit(trainer: trainer_lib.Trainer, train: trainer_lib.SplitData,
        validation: trainer_lib.SplitData | None, test: trainer_lib.SplitData | None = None,
        checkpoint_config: ckpt_lib.CheckpointConfig = ckpt_lib.CheckpointConfig(),
        writer: Any | None = None,
        environment: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Trains (resuming from the newest readable checkpoint in `trainer.model_dir`), validates
  every `eval_every_steps` with early stopping and best-checkpoint selection, then evaluates
  the best checkpoint on `test`. Returns a summary dict (with `'test'` metrics if given).

  `environment` (`persoma.train.environment.describe`) is recorded in the model dir with the
  step this start begins at; a resume on another environment logs a warning naming what changed.
  On SIGTERM it saves the current step and returns `{'preempted': True, ...}`.
  """
  cfg = trainer.config
  ckpt = ckpt_lib.Checkpointer(trainer.model_dir, checkpoint_config)
  meta: dict[str, Any] = dict(ckpt_lib.SELECTION_KEYS, seed=cfg.seed)
  restored = ckpt.restore_latest(trainer.abstract_state())
  if restored is not None:
    trainer.state, meta, step0 = restored
    if meta.get("seed", cfg.seed) != cfg.seed:
      raise ValueError(f"checkpoint in {trainer.model_dir} was trained with seed "
                       f"{meta.get('seed')}, this run has seed {cfg.seed}")
    logging.info("Resuming from step %d (%s)", step0, ckpt.latest.directory)
  if environment is not None and jax.process_index() == 0:
    _record_environment(trainer.model_dir, environment, trainer.step)
  batcher = data_lib.TrainBatcher(train.arrays, cfg.batch_size, cfg.seed,
                                  jax.process_index(), jax.process_count(), train.name,
                                  history_table=train.history_table)
  start = trainer.step
  total = cfg.train_steps
  logging.info("Training steps %d..%d, batch %d, %d train examples (%d steps/epoch)",
               start, total, cfg.batch_size, batcher.num_examples, batcher.steps_per_epoch)
  summary: dict[str, Any] = {"preempted": False}
  t_last, s_last, t_start = time.time(), start, time.time()
  losses: list[Any] = []
  stop = bool(meta.get("stopped_early"))
  with ckpt_lib.PreemptionGuard() as guard:
    step = start
    while step < total and not stop:
      metrics = trainer.train_step(batcher.batch(step))
      step += 1
      losses.append(metrics)
      if len(losses) > MAX_STEPS_IN_FLIGHT:  # bound the queue: SIGTERM saves promptly
        jax.block_until_ready(losses[-MAX_STEPS_IN_FLIGHT - 1]["loss"])
      if step % cfg.log_every_steps == 0 or step == total:
        window = jax.device_get(losses)  # waits for the queued steps
        loss = float(np.mean([m["loss"] for m in window]))
        aux = {f"train/{k}": float(np.mean([m[k] for m in window]))
               for k in trainer_lib.LOGGED_AUX_METRICS if k in window[-1]}
        now = time.time()
        losses = []
        sps = (step - s_last) / max(now - t_last, 1e-9)
        logging.info(
            "step %d/%d loss %.4f | %.2f steps/s %.1f examples/s | epoch %d | ETA %s",
            step, total, loss, sps, sps * cfg.batch_size, batcher.epoch_of(step - 1),
            trainer_lib.fmt_secs((total - step) / max(sps, 1e-9)))
        if writer is not None:
          writer.write_scalars(step, {"train/loss": loss, "train/steps_per_sec": sps,
                                      "train/examples_per_sec": sps * cfg.batch_size,
                                      "train/grad_norm": float(metrics["grad_norm"]), **aux})
        t_last, s_last = now, step
      do_eval = validation is not None and (
          (cfg.eval_every_steps and step % cfg.eval_every_steps == 0) or step == total)
      if do_eval:
        res = trainer.evaluate(validation.arrays, validation.name, validation.targets,
                               cfg.max_eval_examples)
        logging.info("validation step %d: f1 %.4f precision %.4f recall %.4f (%d users)",
                     step, res["f1"], res["precision"], res["recall"], res["users"])
        if writer is not None:
          writer.write_scalars(step, {f"{validation.name}/{k}": res[k]
                                      for k in ("f1", "precision", "recall")})
        if meta["best_f1"] is None or res["f1"] > meta["best_f1"]:
          meta.update(best_f1=res["f1"], best_step=step, bad_evals=0)
          ckpt.save_best(step, trainer.state, meta)
        else:
          meta["bad_evals"] += 1
          if (cfg.early_stopping_patience is not None
              and meta["bad_evals"] >= cfg.early_stopping_patience):
            logging.info("Early stopping at step %d: no validation F1 gain in %d evals "
                         "(best %.4f at step %d)", step, meta["bad_evals"],
                         meta["best_f1"], meta["best_step"])
            meta["stopped_early"] = stop = True
      if (step % checkpoint_config.save_every_steps == 0 or step == total or stop
          or guard.requested):
        t_save = time.time()
        if ckpt.save(step, trainer.state, meta):
          logging.info("saved checkpoint step %d (%.1fs)", step, time.time() - t_save)
      if do_eval:
        t_last, s_last = time.time(), step  # throughput excludes evaluation time
      if guard.requested:
        ckpt.wait()
        logging.warning("Saved step %d after signal %d; exiting.", step, guard.requested)
        summary.update(preempted=True, step=step)
        ckpt.close()
        return summary
  ckpt.wait()
  summary.update(step=trainer.step, best_f1=meta["best_f1"], best_step=meta["best_step"],
                 stopped_early=meta["stopped_early"],
                 train_secs=time.time() - t_start)
  if test is not None:
    best = ckpt.restore_best(trainer.abstract_state())
    if best is not None:
      trainer.state = best[0]
    res = trainer.evaluate(test.arrays, test.name, test.targets)
    summary["test"] = res
    trainer_lib.write_json(os.path.join(trainer.model_dir, f"eval_{test.name}.json"), res)
    if best is not None:
      trainer_lib.write_json(
          os.path.join(ckpt.best.directory, f"eval_{test.name}_step{best[2]}.json"), res)
  ckpt.close()
  return summary


def _record_environment(model_dir: str, environment: Mapping[str, Any], step: int) -> None:
  """Records this start; a record that cannot be read or written is left as it is and training
  goes on (it only says where the run ran)."""
  logging.info("Environment: %s", env_lib.summary_line(environment))
  try:
    entries, changed = env_lib.record(model_dir, environment, step)
  except (OSError, ValueError) as e:
    logging.warning("%s; this start is not recorded", e)
    return
  if changed:
    logging.warning(
        "Step %d starts in another environment than step %d ran in (%s differ; see %s): the "
        "numbers may differ from an uninterrupted run's", step, entries[-2]["step"],
        ", ".join(changed), os.path.join(model_dir, env_lib.FILENAME))
