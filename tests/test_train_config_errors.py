"""persoma-train refuses a bad configuration before reading data, as one `error:` line, and
leaves nothing in MODEL_DIR that would refuse the corrected command (no data is loaded here:
every case fails in validation, or the data loader is replaced)."""

import gin
import pytest

from persoma import errors
from persoma.train import experiment as experiment_lib
from persoma.train import main_train

from test_train_cli import TINY

BAD = [
    ("ADAPTER='mlpp'", "ADAPTER='mlpp' is unknown"),
    ("SAMPLER='recent'", "SAMPLER='recent' is unknown"),
    ("FORMAT='xml'", "FORMAT='xml' is unknown"),
    ("DATASET='movielens_2m'", "DATASET='movielens_2m' is unknown"),
    ("TRAINING_MODE='half'", "TRAINING_MODE='half' is unknown"),
    ("MODEL_SIZE='huge'", "MODEL_SIZE='huge' is unknown"),
    ("COMPOSITION='soup'", "COMPOSITION='soup' is unknown"),
    ("ENCODER='hashing:x'", "ENCODER='hashing:x'"),
    ("HISTORY_SIZE=-5", "HISTORY_SIZE=-5 must be an int >= 1"),
    ("HISTORY_SIZE=0", "HISTORY_SIZE=0 must be an int >= 1"),
    ("BATCH_SIZE=0", "batch_size=0 (gin macro BATCH_SIZE)"),
    ("TRAIN_STEPS=-3", "train_steps=-3 (gin macro TRAIN_STEPS)"),
    ("LEARNING_RATE=-1", "learning_rate=-1 (gin macro LEARNING_RATE)"),
    ("NUM_PARTITIONS=3", "num_partitions=3 (gin macro NUM_PARTITIONS)"),
    ("LORA_RANK=-1", "LORA_RANK=-1 must be an int >= 0"),
    ("TRAINING_MODE='lora'", "LORA_RANK=0 adds none: set --gin.LORA_RANK"),
    ("BASELINES=('countin',)", "unknown ['countin']"),
]


@pytest.mark.parametrize("binding,message", BAD, ids=[b for b, _ in BAD])
def test_a_refused_value_is_one_error_line_and_writes_nothing(tmp_path, binding, message):
  model_dir = tmp_path / "run"
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit) as e:
    main_train.main(TINY + [f"--gin.MODEL_DIR='{model_dir}'", f"--gin.{binding}"])
  gin.clear_config(clear_constants=True)
  text = str(e.value.code)
  assert text.startswith("error: ") and message in text, text
  assert "\n" not in text and "In call to configurable" not in text, text
  assert not (model_dir / "config.gin").exists()  # the corrected command is not refused


def test_config_gin_is_written_only_once_training_starts(tmp_path, monkeypatch):
  """A run that fails after validation (here: loading data) leaves no config.gin either."""

  def fail(self, split, history_as_index=None):
    raise RuntimeError(f"cannot load {split}")

  monkeypatch.setattr(experiment_lib.TaskData, "load", fail)
  model_dir = tmp_path / "run"
  gin.clear_config(clear_constants=True)
  with pytest.raises(RuntimeError, match="cannot load train"):
    main_train.main(TINY + [f"--gin.MODEL_DIR='{model_dir}'"])
  gin.clear_config(clear_constants=True)
  assert not (model_dir / "config.gin").exists()


def test_a_rationale_target_cut_by_targets_length_is_refused(tmp_path):
  """With the rationale the labels come last, so a target filling TARGETS_LENGTH is an error
  naming the macro, raised at data load, before any config.gin or checkpoint is written."""
  model_dir = tmp_path / "run"
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit) as e:
    main_train.main(TINY + [f"--gin.MODEL_DIR='{model_dir}'",
                            "--gin.data_config.PersomaDataConfig.target_rationale=True"])
  gin.clear_config(clear_constants=True)
  text = str(e.value.code)
  assert text.startswith("error: ") and "raise TARGETS_LENGTH" in text, text
  assert "target_rationale" in text and "fill all 20 tokens" in text, text
  assert not (model_dir / "config.gin").exists()


def test_experiment_validate_names_the_macro():
  ok = experiment_lib.Experiment()
  ok.validate()
  lora = experiment_lib.Experiment(
      training_mode="lora", model=experiment_lib.ModelSpec(lora_rank=4))
  lora.validate()
  for exp, message in (
      (experiment_lib.Experiment(task=experiment_lib.TaskData(history_size=-5)),
       "HISTORY_SIZE=-5"),
      (experiment_lib.Experiment(training_mode="lora"), "LORA_RANK"),
      (experiment_lib.Experiment(task=experiment_lib.TaskData(text_prompt=True)),
       "COMPOSITION='persoma' reads history embeddings"),
      (experiment_lib.Experiment(model=experiment_lib.ModelSpec(
          t5_overrides={"no_such_dim": 3})), "no_such_dim"),
  ):
    with pytest.raises(errors.ConfigError, match=message):
      exp.validate()


def test_one_line_drops_the_lines_gin_appends():
  err = errors.ConfigError("X=1 is bad\n  In call to configurable 'A' (<class A>)\n"
                           "  In call to configurable 'train' (<function train>)")
  assert errors.one_line(err) == "X=1 is bad"
  assert isinstance(err, ValueError)
