"""Subprocess driver for the resume and sharding tests (not a test file).

  python tests/standin_run.py MODEL_DIR [--steps=N] [--num_partitions=K] [--sleep=S]

Trains the stand-in model with `persoma.train.loop.fit` and prints one JSON line
`{"losses": [...], "step": ..., "preempted": ..., "param_specs": {...}}` at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

import standin
from persoma.train import checkpointing, loop, optim, partitioning, trainer as trainer_lib


def real_model():
  """The real PERSOMA model (tiny T5, mlp adapter, 2 task-prompt tokens) for the stand-in data."""
  from persoma.train import experiment  # pylint: disable=g-import-not-at-top
  spec = experiment.ModelSpec(size="tiny", adapter="mlp", task_prompt_length=2,
                              adapter_fields={"mlp": {"hidden_dim": 16}})
  return spec.build(vocab_size=standin.VOCAB, input_dim=8)


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("model_dir")
  p.add_argument("--steps", type=int, default=12)
  p.add_argument("--num_partitions", type=int, default=1)
  p.add_argument("--sleep", type=float, default=0.0)
  p.add_argument("--save_every", type=int, default=4)
  p.add_argument("--eval_every", type=int, default=0)
  p.add_argument("--schedule", default="warmup_cosine")
  p.add_argument("--plain", action="store_true", help="train steps only: no checkpoints/eval")
  p.add_argument("--real", action="store_true",
                 help="train the real PersomaModel (tiny T5 + mlp adapter) instead of the stand-in")
  a = p.parse_args(argv)
  if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s", force=True)
  train_a, train_t = standin.make_split(48, 0)
  valid_a, valid_t = standin.make_split(16, 1)
  part = partitioning.Partitioner(num_partitions=a.num_partitions)
  cfg = trainer_lib.TrainerConfig(train_steps=a.steps, batch_size=8, eval_every_steps=a.eval_every,
                                  eval_batch_size=8, log_every_steps=1, seed=3,
                                  early_stopping_patience=None)
  model = real_model() if a.real else standin.StandinModel()
  tr = trainer_lib.Trainer(model, part,
                           optim.OptimizerConfig(learning_rate=1e-2, schedule=a.schedule,
                                                 warmup_steps=2), cfg, a.model_dir, train_a,
                           training_mode="full", decode_fn=standin.decode)
  losses = []
  step_fn = tr.train_step

  def logged_step(batch):
    m = step_fn(batch)
    losses.append(float(m["loss"]))
    print(f"STEP {tr.step}", flush=True)
    if a.sleep:
      time.sleep(a.sleep)
    return m

  tr.train_step = logged_step
  if a.plain:
    batcher = trainer_lib.data_lib.TrainBatcher(train_a, cfg.batch_size, cfg.seed)
    for step in range(a.steps):
      tr.train_step(batcher.batch(step))
    summary = {"step": tr.step, "preempted": False}
  else:
    summary = loop.fit(tr, trainer_lib.SplitData(train_a, train_t, "train"),
                              trainer_lib.SplitData(valid_a, valid_t, "validation"),
                              checkpoint_config=checkpointing.CheckpointConfig(
                                  save_every_steps=a.save_every, keep=2))
  specs = {"/".join(str(getattr(k, "key", k)) for k in path): str(s.spec)
           for path, s in jax.tree_util.tree_flatten_with_path(tr.param_shardings)[0]}
  params = jax.device_get(tr.state["params"])
  os.makedirs(a.model_dir, exist_ok=True)
  np.savez(os.path.join(a.model_dir, "final_params.npz"),
           **{f"p{i}": x for i, x in enumerate(jax.tree.leaves(params))})
  out = {"losses": losses, "step": summary.get("step"), "preempted": summary["preempted"],
         "devices": jax.device_count(), "mesh": dict(part.mesh.shape), "param_specs": specs,
         "batch_spec": str(tr.batch_shardings["encoder_input_tokens"].spec)}
  print(json.dumps(out), flush=True)
  return out, params


if __name__ == "__main__":
  main()
