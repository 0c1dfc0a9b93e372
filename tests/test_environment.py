"""The run-environment record: CPU parsing, the model dir's `environment.json` (one entry per
start that differs from the last), the embedding-table identity, and the training loop writing
it and warning when a resume runs elsewhere."""

import json
import logging

import jax
import numpy as np
import pytest

import standin
from persoma.seqio_tasks import config as config_lib
from persoma.seqio_tasks import tasks
from persoma.train import checkpointing, environment, experiment, loop, optim, partitioning
from persoma.train import trainer as T

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_bf16 amx_tile

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse4_2
"""


def test_cpu_info_reads_model_and_vector_extensions(tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text(CPUINFO)
  model, isa = environment.cpu_info(str(path))
  assert model == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
  assert isa == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16",
                 "amx_tile"]  # the first processor's flags, in ISA_FLAGS order; fpu dropped
  model, isa = environment.cpu_info(str(tmp_path / "absent"))
  assert model and isa == []


def test_describe_names_the_devices_mesh_and_versions():
  env = environment.describe({"data": jax.device_count(), "model": 1},
                             {"sha256": "ab" * 8})
  assert env["devices"] == jax.device_count() and env["backend"] == jax.default_backend()
  assert env["mesh"] == {"data": jax.device_count(), "model": 1}
  assert env["versions"]["jax"] == jax.__version__ and env["embeddings"] == {"sha256": "ab" * 8}
  assert 1 <= env["cores"] == len(env["affinity"]) <= env["cpus"]
  json.dumps(env)  # the record is plain JSON
  line = environment.summary_line(env)
  assert env["cpu"] in line and "abababababababab" in line
  assert f"mesh data {jax.device_count()} x model 1" in line
  pinned = dict(env, cpus=8, affinity=[3])
  assert "core 3," in environment.summary_line(pinned)
  assert "cores 2,3," in environment.summary_line(dict(pinned, affinity=[2, 3]))
  assert "all 8 cores," in environment.summary_line(dict(pinned, affinity=list(range(8))))


def test_record_appends_only_a_changed_environment(tmp_path):
  env = {"cpu": "A", "cores": 1, "affinity": [0], "mesh": {"data": 2, "model": 1},
         "embeddings": {"sha256": "x"}}
  entries, changed = environment.record(str(tmp_path), env, 0)
  assert changed == [] and len(entries) == 1 and entries[0]["step"] == 0
  path = tmp_path / environment.FILENAME
  written = path.stat().st_mtime_ns
  # the same host resumes, pinned to another core: the same environment, the file untouched
  entries, changed = environment.record(str(tmp_path), {**env, "affinity": [1]}, 300)
  assert changed == [] and len(entries) == 1 and path.stat().st_mtime_ns == written
  moved = {**env, "cpu": "B", "mesh": {"data": 1, "model": 1}}
  entries, changed = environment.record(str(tmp_path), moved, 600)
  assert changed == ["cpu", "mesh"] and [e["step"] for e in entries] == [0, 600]
  assert environment.read(str(tmp_path)) == entries  # what is on disk
  # B stopped before its next checkpoint; the run restarts from step 600 on a third host: B's
  # entry goes (nothing it ran was kept) and the new one is compared with A's
  entries, changed = environment.record(str(tmp_path), {**env, "cores": 4}, 600)
  assert changed == ["cores"] and [(e["step"], e["cores"]) for e in entries] == [(0, 1), (600, 4)]
  entries, changed = environment.record(str(tmp_path), env, 0)  # a restart from scratch
  assert changed == [] and len(entries) == 1 and environment.read(str(tmp_path)) == entries


@pytest.mark.parametrize("text, match", [("[{", "not readable as JSON"),
                                         ('{"cpu": "A"}', "expected a JSON list of entries"),
                                         ("[1, 2]", "entry 0 is not an object"),
                                         ('[{"cpu": "A"}]', "entry 0 is not an object with")])
def test_a_bad_record_is_refused_naming_the_file_and_left_as_it_was(tmp_path, text, match):
  path = tmp_path / environment.FILENAME
  path.write_text(text)
  with pytest.raises(ValueError, match=match) as e:
    environment.record(str(tmp_path), {"cpu": "A"}, 0)
  assert str(path) in str(e.value) and path.read_text() == text


def test_embeddings_identity_is_the_digest_of_the_table_the_task_reads():
  config_lib.reset_config()
  try:
    task = experiment.TaskData(dataset="synthetic", history_size=5)
    ident = task.embeddings_identity()
    store = tasks.get_store(task.spec().dataset_name, "uem")
    assert ident["sha256"] == environment.table_digest(store.table)
    assert ident["shape"] == list(store.table.shape) and ident["encoder"] == store.encoder_name
    assert ident["cache_file"].endswith(".npz")
    bumped = store.table.copy()
    bumped[0, 0] = np.nextafter(bumped[0, 0], np.float32(np.inf))  # one last bit
    assert environment.table_digest(bumped) != ident["sha256"]
    assert experiment.TaskData(dataset="synthetic", history_size=5,
                               text_prompt=True).embeddings_identity() is None
  finally:
    config_lib.reset_config()


def _fit(model_dir, steps, env):
  train = T.SplitData(*standin.make_split(48, 0), "train")
  cfg = T.TrainerConfig(train_steps=steps, batch_size=8, eval_every_steps=0, eval_batch_size=8,
                        log_every_steps=2, seed=1)
  tr = T.Trainer(standin.StandinModel(), partitioning.Partitioner(), optim.OptimizerConfig(),
                 cfg, str(model_dir), train.arrays, decode_fn=standin.decode)
  return loop.fit(tr, train, None, None, checkpointing.CheckpointConfig(save_every_steps=2),
                  environment=env)


def test_fit_records_each_start_and_warns_when_a_resume_runs_elsewhere(tmp_path, caplog):
  env = environment.describe({"data": 1, "model": 1}, None)
  with caplog.at_level(logging.INFO):
    _fit(tmp_path, 2, env)
    _fit(tmp_path, 4, env)  # resumes at step 2 here: nothing new to record
  assert [e["step"] for e in environment.read(str(tmp_path))] == [0]
  assert any(r.getMessage().startswith("Environment: ") for r in caplog.records)
  assert not any("another environment" in r.getMessage() for r in caplog.records)
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    _fit(tmp_path, 6, {**env, "cpu": "Another CPU"})
  entries = environment.read(str(tmp_path))
  assert [(e["step"], e["cpu"]) for e in entries] == [(0, env["cpu"]), (4, "Another CPU")]
  warned = [r.getMessage() for r in caplog.records if "another environment" in r.getMessage()]
  assert len(warned) == 1 and "Step 4" in warned[0] and "step 0" in warned[0]
  assert "(cpu differ" in warned[0]


def test_fit_goes_on_when_the_record_cannot_be_written(tmp_path, caplog, monkeypatch):
  def unwritable(path, text):
    raise OSError(f"{path}: No space left on device")

  monkeypatch.setattr(environment.atomic_io, "write_text", unwritable)
  with caplog.at_level(logging.WARNING):
    summary = _fit(tmp_path, 2, environment.describe({"data": 1, "model": 1}, None))
  assert summary["step"] == 2 and not (tmp_path / environment.FILENAME).exists()
  assert any("No space left" in r.getMessage() and "not recorded" in r.getMessage()
             for r in caplog.records)


def test_fit_goes_on_past_an_unreadable_record_and_leaves_it_as_it_was(tmp_path, caplog):
  path = tmp_path / environment.FILENAME
  path.write_text("[{")
  with caplog.at_level(logging.WARNING):
    summary = _fit(tmp_path, 2, environment.describe({"data": 1, "model": 1}, None))
  assert summary["step"] == 2 and path.read_text() == "[{"
  assert any(str(path) in r.getMessage() and "not recorded" in r.getMessage()
             for r in caplog.records)
