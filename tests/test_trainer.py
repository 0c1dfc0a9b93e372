"""The training loop on the stand-in model: learns, validates, keeps the best checkpoint, stops
early, evaluates test into JSON, honours training modes, and logs through clu writers."""

import dataclasses
import json
import logging

import jax
import numpy as np
import pytest

import standin
from persoma.train import checkpointing, loop, optim, partitioning
from persoma.train import trainer as T


def _trainer(tmp_path, mode="full", steps=30, patience=None, score_fn=None, lr=3e-2):
  train_a, _ = standin.make_split(48, 0)
  cfg = T.TrainerConfig(train_steps=steps, batch_size=8, eval_every_steps=10, eval_batch_size=8,
                        log_every_steps=5, early_stopping_patience=patience, seed=1)
  return T.Trainer(standin.StandinModel(), partitioning.Partitioner(),
                   optim.OptimizerConfig(learning_rate=lr), cfg, str(tmp_path), train_a,
                   training_mode=mode, decode_fn=standin.decode, score_fn=score_fn)


def _splits():
  train = T.SplitData(*standin.make_split(48, 0), "train")
  valid = T.SplitData(*standin.make_split(16, 1), "validation")
  test = T.SplitData(*standin.make_split(16, 2), "test")
  return train, valid, test


class _Writer:
  def __init__(self):
    self.scalars = []

  def write_scalars(self, step, scalars):
    self.scalars.append((step, dict(scalars)))


def test_fit_learns_keeps_best_and_writes_test_json(tmp_path, caplog):
  tr = _trainer(tmp_path, steps=30)
  train, valid, test = _splits()
  before = tr.evaluate(valid.arrays, "validation", valid.targets)
  w = _Writer()
  with caplog.at_level(logging.INFO):
    summary = loop.fit(tr, train, valid, test, checkpointing.CheckpointConfig(save_every_steps=30),
                    writer=w)
  assert summary["step"] == 30 and not summary["preempted"]
  assert summary["best_f1"] > before["f1"]
  res = json.loads((tmp_path / "eval_test.json").read_text())
  assert set(res) >= {"f1", "precision", "recall", "split", "step", "users"}
  assert res["split"] == "test" and res["users"] == 16 and res["step"] == summary["best_step"]
  assert (tmp_path / "best" / f"eval_test_step{summary['best_step']}.json").exists()
  assert 0.0 <= res["f1"] <= 1.0
  # Readable log lines with loss, throughput and ETA; TensorBoard scalars via the writer.
  lines = [r.getMessage() for r in caplog.records]
  assert any("loss" in l and "steps/s" in l and "examples/s" in l and "ETA" in l for l in lines)
  losses = [s["train/loss"] for _, s in w.scalars if "train/loss" in s]
  assert losses[-1] < losses[0]
  # the loss_fn's T5X aux metrics, averaged over the same interval as train/loss
  last = [s for _, s in w.scalars if "train/loss" in s][-1]
  np.testing.assert_allclose(last["train/loss"], last["train/cross_ent_loss"] +
                             last["train/z_loss"], rtol=1e-5)
  assert 0.0 <= last["train/accuracy"] <= 1.0 and "train/item_loss" not in last
  assert any("validation/f1" in s for _, s in w.scalars)


def test_early_stopping_when_validation_does_not_improve(tmp_path):
  flat = lambda p, t: {"f1": 0.5, "precision": 0.5, "recall": 0.5}
  tr = _trainer(tmp_path, steps=100, patience=2, score_fn=flat)
  train, valid, _ = _splits()
  summary = loop.fit(tr, train, valid)
  assert summary["stopped_early"] and summary["step"] == 30  # evals at 10 (best), 20, 30
  assert summary["best_step"] == 10


def test_frozen_mode_leaves_the_lm_bit_identical(tmp_path):
  tr = _trainer(tmp_path, mode="frozen", steps=5)
  before = jax.device_get(tr.state["params"])
  train, _, _ = _splits()
  bt = T.data_lib.TrainBatcher(train.arrays, 8, 0)
  for s in range(5):
    tr.train_step(bt.batch(s))
  after = jax.device_get(tr.state["params"])
  for name in ("token_embedder", "wi", "wo"):
    np.testing.assert_array_equal(before[name], after[name])
  assert not np.array_equal(before["adapter"]["kernel"], after["adapter"]["kernel"])
  assert not np.array_equal(before["task_prompt"]["prompt"], after["task_prompt"]["prompt"])
  # An empty evaluation split is a clear error.
  empty = {k: v[:0] for k, v in standin.make_split(4, 0)[0].items()}
  with pytest.raises(ValueError, match="empty"):
    tr.evaluate(empty, "test", [])


def test_bad_batch_sizes():
  with pytest.raises(ValueError, match="batch sizes"):
    T.TrainerConfig(batch_size=0)
  with pytest.raises(ValueError, match="train_steps"):
    T.TrainerConfig(train_steps=0)


def test_fit_keeps_at_most_two_steps_in_flight(tmp_path, monkeypatch):
  """Asynchronous dispatch is bounded: before step k+3 is dispatched, step k has finished, so
  a SIGTERM save waits for at most MAX_STEPS_IN_FLIGHT steps, not a whole logging interval."""
  tr = _trainer(tmp_path, steps=12)
  tr.config = dataclasses.replace(tr.config, log_every_steps=100, eval_every_steps=0)
  events = []
  real_step, real_block = tr.train_step, jax.block_until_ready

  def step(batch):
    events.append("dispatch")
    return real_step(batch)

  def block(x):
    events.append("wait")
    return real_block(x)

  tr.train_step = step
  monkeypatch.setattr(T.jax, "block_until_ready", block)
  train, _, _ = _splits()
  assert loop.fit(tr, train, None)["step"] == 12
  dispatched = waited = 0
  for e in events:
    dispatched += e == "dispatch"
    waited += e == "wait"
    assert dispatched - waited <= loop.MAX_STEPS_IN_FLIGHT + 1
  assert waited >= 12 - loop.MAX_STEPS_IN_FLIGHT
