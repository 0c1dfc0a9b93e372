"""orbax checkpoints: round trip, keep-N, best, corrupt/partial fallback, restore from a model
dir or one step dir, params-only restore, SIGTERM guard."""

import logging
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from persoma.train import checkpointing as ck


def _state(v=1.0):
  params = {"a": jnp.full((4, 2), v), "b": {"c": jnp.arange(3.0) * v}}
  return {"step": jnp.int32(0), "params": params, "opt_state": optax.adam(1e-3).init(params)}


def test_round_trip_keep_n_and_best(tmp_path):
  c = ck.Checkpointer(str(tmp_path), ck.CheckpointConfig(save_every_steps=1, keep=2))
  for step in (1, 2, 3):
    assert c.save(step, _state(step), {"best_f1": 0.1 * step})
  assert not c.save(3, _state(3), {})  # same step twice: no-op
  c.save_best(2, _state(2), {"best_f1": 0.2})
  c.wait()
  assert c.latest.all_steps() == [2, 3]
  state, meta, step = c.restore_latest(ck.abstract_like(_state()))
  assert step == 3 and meta["best_f1"] == pytest.approx(0.3) and meta["step"] == 3
  np.testing.assert_array_equal(state["params"]["a"], np.full((4, 2), 3.0))
  assert jax.tree.structure(state) == jax.tree.structure(_state())
  best = c.restore_best(ck.abstract_like(_state()))
  assert best[2] == 2
  c.close()


def test_fresh_dir_restores_nothing(tmp_path):
  c = ck.Checkpointer(str(tmp_path / "new"))
  assert c.restore_latest(ck.abstract_like(_state())) is None
  c.close()


def test_corrupt_latest_falls_back_to_previous_and_says_so(tmp_path, caplog):
  c = ck.Checkpointer(str(tmp_path), ck.CheckpointConfig(keep=3))
  c.save(1, _state(1.0), {})
  c.save(2, _state(2.0), {})
  c.wait()
  c.close()
  # Corrupt step 2: truncate every data file of its state.
  for root, _, files in os.walk(tmp_path / "checkpoints" / "2" / "state"):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"garbage")
  # A partial save (orbax's temporary dir) must be ignored, not mistaken for a step.
  os.makedirs(tmp_path / "checkpoints" / "3.orbax-checkpoint-tmp-123" / "state")
  c = ck.Checkpointer(str(tmp_path), ck.CheckpointConfig(keep=3))
  with caplog.at_level(logging.WARNING):
    state, _, step = c.restore_latest(ck.abstract_like(_state()))
  assert step == 1
  np.testing.assert_array_equal(state["params"]["a"], np.full((4, 2), 1.0))
  assert any("step 2" in r.getMessage() and "falling back" in r.getMessage()
             for r in caplog.records)
  assert os.path.isdir(tmp_path / "checkpoints" / "2")  # nothing saved is deleted
  c.close()


def test_restore_from_model_dir_or_step_dir_and_params_only(tmp_path):
  c = ck.Checkpointer(str(tmp_path))
  c.save(5, _state(5.0), {})
  c.save_best(3, _state(3.0), {"best_f1": 0.5})
  c.close()
  _, _, step = ck.restore_from_path(str(tmp_path), ck.abstract_like(_state()))
  assert step == 3  # a model dir means its best checkpoint
  _, _, step = ck.restore_from_path(str(tmp_path / "checkpoints" / "5"),
                                    ck.abstract_like(_state()))
  assert step == 5
  params, step, d = ck.restore_params_from_path(
      str(tmp_path / "checkpoints" / "5"), ck.abstract_like(_state()["params"]))
  assert step == 5 and d.endswith("5")
  np.testing.assert_array_equal(params["b"]["c"], np.arange(3.0) * 5)
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    ck.candidate_step_dirs(str(tmp_path / "empty"))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    ck.candidate_step_dirs(str(tmp_path / "nope"))


def test_preemption_guard_turns_sigterm_into_a_flag():
  with ck.PreemptionGuard() as g:
    assert g.requested is None
    os.kill(os.getpid(), signal.SIGTERM)
    assert g.requested == signal.SIGTERM
  assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler) or \
      callable(signal.getsignal(signal.SIGTERM))
