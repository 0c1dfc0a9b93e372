"""Every gin file in the repo parses and builds its model; each choice is one binding."""

import dataclasses
import sys
from pathlib import Path

import gin
import jax
import numpy as np
import pytest

from persoma.data import labels
from persoma.train import experiment as experiment_lib
from persoma.train import gin_cli

GIN_DIR = Path(__file__).resolve().parents[1] / "gin"
ALL_FILES = sorted(str(p.relative_to(GIN_DIR)) for p in GIN_DIR.rglob("*.gin"))
COMPLETE = [f for f in ALL_FILES if "/" not in f and f != "experiment.gin"]
# Mix-ins whose settings only mean something on top of a run file (persoma refuses a setting
# nothing reads): parsed after that file.
AFTER = {"experiments/tuned_rule_labels.gin": "experiments/persoma_mlp_rationale.gin"}


def _parse(files, bindings=()):
  gin.clear_config(clear_constants=True)
  gin_cli.parse(files, list(bindings), "")
  return gin.get_configurable(experiment_lib.Experiment)()


class _Vocab:
  """Stands in for the task vocabulary (read only by genre-name anchors)."""

  def encode(self, text):
    return [3 + len(text) % 200]


def _build(exp):
  """The model at its configured size (constructed), and an abstract init (shapes only) of the
  same composition / adapter / LoRA on the tiny T5 to check the wiring cheaply."""
  k = 3 if exp.task.fmt == "uem" else 1
  example = {"encoder_input_tokens": np.zeros((2, 8), np.int32),
             "decoder_input_tokens": np.zeros((2, 4), np.int32)}
  if not exp.task.text_prompt:
    example["history_embeddings"] = np.zeros((2, 5, k * 8), np.float32)
    example["history_mask"] = np.ones((2, 5), np.int32)
  model = exp.build_model(example, vocab_size=300, vocabulary=_Vocab())
  assert model.network.t5_config.vocab_size >= 300
  tiny = dataclasses.replace(exp, model=dataclasses.replace(exp.model, size="tiny"))
  model_tiny = tiny.build_model(example, vocab_size=300, vocabulary=_Vocab())
  shapes = {key: v.shape for key, v in example.items()}
  types = {key: v.dtype for key, v in example.items()}
  variables = jax.eval_shape(
      lambda r: model_tiny.get_initial_variables(r, shapes, types), jax.random.PRNGKey(0))
  paths = {"/".join(str(getattr(k, "key", k)) for k in p)
           for p, _ in jax.tree_util.tree_flatten_with_path(variables["params"])[0]}
  assert any(p.startswith("encoder/") for p in paths)
  if exp.model.composition != "text":
    assert any(p.startswith("adapter/") for p in paths), sorted(paths)[:5]
  if exp.model.lora_rank:
    assert any("lora_a" in p for p in paths)
  return model


def test_found_the_library():
  for f in ["experiment.gin", "quickstart.gin", "perceiver_frozen.gin", "mlp_frozen.gin",
            "transformer_frozen.gin", "mlp_lora.gin", "mlp_full.gin", "uem.gin",
            "text_prompt.gin", "runs/train.gin", "runs/eval.gin", "runs/infer.gin",
            "modes/lora.gin", "adapters/perceiver.gin", "samplers/genre.gin",
            "models/t5_small.gin"]:
    assert f in ALL_FILES, f


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_file_parses_and_builds(name):
  text = (GIN_DIR / name).read_text()
  assert text.startswith(f"# {Path(name).name}:") or text.startswith(f"# {name}:"), name
  assert "Provides:" in text and "Requires:" in text, f"{name}: header lacks Provides/Requires"
  assert "@gin.configurable" not in text
  files = [name] if name in COMPLETE else ["experiment.gin", name]
  if name in AFTER:
    files = [AFTER[name], name]
  exp = _parse(files, ["MODEL_DIR='/tmp/unused'"])
  exp.validate()  # persoma-train's pre-data checks accept every shipped file
  _build(exp)
  gin.clear_config(clear_constants=True)


def test_experiment_files_mean_what_they_say():
  exp = _parse(["perceiver_frozen.gin"], ["MODEL_DIR=None"])
  assert (exp.model.adapter, exp.training_mode, exp.model.lora_rank) == ("perceiver", "frozen", 0)
  exp = _parse(["mlp_lora.gin"], ["MODEL_DIR=None"])
  assert (exp.model.adapter, exp.training_mode, exp.model.lora_rank) == ("mlp", "lora", 4)
  exp = _parse(["uem.gin"], ["MODEL_DIR=None"])
  assert (exp.model.composition, exp.task.fmt) == ("uem", "uem")
  exp = _parse(["text_prompt.gin"], ["MODEL_DIR=None"])
  assert exp.model.composition == "text" and exp.task.text_prompt
  assert exp.task.task_name.endswith("_textprompt")
  exp = _parse(["quickstart.gin"], ["MODEL_DIR=None"])
  assert exp.task.dataset == "synthetic" and exp.task.data_config.encoder == "hashing"
  exp = _parse(["experiments/persoma_mlp_rationale.gin"], ["MODEL_DIR=None"])
  assert exp.task.data_config.target_rationale and exp.task.targets_length == 128
  assert exp.task.data_config.item_targets and exp.model.item_loss_weight == 1.0
  assert exp.task.data_config.rationale_order == "canonical"
  exp = _parse(["experiments/persoma_mlp_rationale_ranked.gin"], ["MODEL_DIR=None"])
  assert exp.task.data_config.target_rationale and exp.task.targets_length == 128
  assert exp.task.data_config.rationale_order == "rating"
  exp = _parse(["experiments/persoma_genre_names_rationale.gin"], ["MODEL_DIR=None"])
  assert exp.task.data_config.target_rationale and exp.task.targets_length == 128
  assert exp.model.adapter == "genre_stats" and exp.model.genre_name_tokens
  assert exp.task.data_config.item_targets
  assert exp.task.data_config.shown_label_config is None
  exp = _parse(["experiments/persoma_genre_names_tuned.gin"],
               ["MODEL_DIR=None", "SHOWN_MAX_DISLIKED=5"])
  assert exp.task.data_config.target_rationale and exp.model.genre_name_tokens
  assert exp.task.data_config.label_config is None  # the test targets keep the label rule
  tuned = exp.task.data_config.shown_label_config
  assert (tuned.like_threshold, tuned.dislike_threshold, tuned.max_liked, tuned.max_disliked,
          tuned.min_genre_count, tuned.source) == (3.65, 2.75, 3, 5, 2, "history")
  assert not exp.model.adapter_fields["genre_stats"].get("length_features")
  exp = _parse(["experiments/persoma_mlp_rationale_tuned.gin"], ["MODEL_DIR=None"])
  assert exp.model.adapter == "mlp" and exp.task.data_config.target_rationale
  assert exp.task.data_config.item_targets and exp.task.data_config.label_config is None
  assert exp.task.data_config.shown_label_config == dataclasses.replace(tuned, max_disliked=4)
  assert not exp.model.adapter_fields["mlp"].get("length_token")
  exp = _parse(["experiments/persoma_mlp_rationale_tuned_len.gin"], ["MODEL_DIR=None"])
  assert exp.model.adapter_fields["mlp"]["length_token"] and exp.model.item_loss_weight == 1.0
  assert exp.task.data_config.shown_label_config == dataclasses.replace(tuned, max_disliked=4)
  exp = _parse(["experiments/persoma_mlp_rationale_tuned_probe.gin"],
               ["MODEL_DIR=None", "SHOWN_MIN_GENRE_COUNT=3"])
  assert exp.model.probe_loss_weight == 1.0 and exp.model.task_prompt_length >= 19
  assert not exp.model.adapter_fields["mlp"].get("length_token")
  rule = exp.task.data_config.shown_label_config
  assert exp.model.probe_rule == rule and rule.min_genre_count == 3 and rule.max_disliked == 4
  exp.model.validate()
  assert exp.model.probe_whole_rule is None and not exp.task.data_config.whole_rationale
  exp = _parse(["experiments/persoma_mlp_rationale_tuned_probe_whole.gin"], ["MODEL_DIR=None"])
  assert exp.task.data_config.whole_rationale and exp.task.data_config.target_rationale
  assert exp.model.probe_whole_rule == labels.LabelConfig()
  assert exp.task.data_config.label_config is None
  assert exp.model.probe_rule == exp.task.data_config.shown_label_config
  assert exp.model.adapter_fields["mlp"]["length_token"] and exp.model.probe_loss_weight == 1.0
  exp.model.validate()
  assert not exp.task.data_config.rationale_counts
  whole = exp
  exp = _parse(["experiments/persoma_mlp_rationale_tuned_probe_whole_counts.gin"],
               ["MODEL_DIR=None"])
  assert exp.task.data_config == dataclasses.replace(whole.task.data_config,
                                                     rationale_counts=True)
  assert exp.task.targets_length == 160 and exp.model == whole.model
  exp = _parse(["experiments/persoma_genre_names_tuned_len.gin"], ["MODEL_DIR=None"])
  assert exp.task.data_config.shown_label_config.like_threshold == 3.65
  assert exp.model.adapter_fields["genre_stats"] == {"hidden_dim": 512, "length_features": True}
  exp = _parse(["experiments/persoma_genre_names_tuned_rank.gin"], ["MODEL_DIR=None"])
  assert exp.task.data_config.shown_label_config.min_genre_count == 2
  assert exp.model.adapter_fields["genre_stats"] == {
      "hidden_dim": 512, "length_features": True, "rank_min_counts": (2, 3)}
  gin.clear_config(clear_constants=True)


def test_a_pretrained_file_after_a_run_file_matches_the_released_checkpoint():
  exp = _parse(["perceiver_frozen.gin", "pretrained/flan_t5_base.gin"], ["MODEL_DIR=None"])
  assert exp.model.size == "base" and exp.model.adapter == "perceiver"
  assert exp.initial_checkpoint_path.endswith("/flan_t5_base/checkpoint_1184000")
  data = exp.task.data_config
  assert data.vocabulary_path.endswith("cc_all.32000.100extra/sentencepiece.model")
  assert data.vocab_extra_ids == 100
  example = {"encoder_input_tokens": np.zeros((2, 8), np.int32),
             "decoder_input_tokens": np.zeros((2, 4), np.int32),
             "history_embeddings": np.zeros((2, 5, 24), np.float32),
             "history_mask": np.ones((2, 5), np.int32)}
  cfg = exp.build_model(example, vocab_size=32000 + 100, vocabulary=_Vocab()).network.t5_config
  assert (cfg.vocab_size, cfg.emb_dim, cfg.num_encoder_layers) == (32128, 768, 12)
  gin.clear_config(clear_constants=True)


def test_each_choice_is_one_binding():
  exp = _parse(["mlp_frozen.gin"], [
      "ADAPTER='perceiver'", "LORA_RANK=8", "TRAINING_MODE='lora'", "SAMPLER='long_tail'",
      "HISTORY_SIZE=10", "DATASET='movielens_latest_small'", "ENCODER='hashing'",
      "NUM_LATENTS=7", "MODEL_DIR=None"])
  assert exp.model.adapter == "perceiver"
  assert exp.model.lora_rank == 8 and exp.training_mode == "lora"
  assert exp.task.sampler == "long_tail" and exp.task.history_size == 10
  assert exp.task.task_name == "persoma_movielens_latest_small_h10_long_tail_uem"
  assert exp.task.data_config.encoder == "hashing"
  model = _build(exp)
  assert model.network.adapter.num_latents == 7
  gin.clear_config(clear_constants=True)


def test_unknown_key_and_file_name_them_and_the_search_path():
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit) as e:
    gin_cli.parse(["quickstart.gin"], ["experiment.ModelSpec.no_such_field = 3"], "")
  assert "no_such_field" in str(e.value) and "search path" in str(e.value)
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit) as e:
    gin_cli.parse(["nope/missing.gin"], [], "/tmp/elsewhere")
  assert "nope/missing.gin" in str(e.value) and "/tmp/elsewhere" in str(e.value)
  gin.clear_config(clear_constants=True)


def test_a_macro_binding_no_gin_file_uses_is_warned_with_close_names(caplog):
  gin.clear_config(clear_constants=True)
  with caplog.at_level("WARNING"):
    gin_cli.parse(["quickstart.gin"], ["TRAIN_STEPZ = 3", "TRAIN_STEPS = 4", "MODEL_DIR = None"],
                  "")
  warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
  assert len(warned) == 1 and "%TRAIN_STEPZ" in warned[0] and "TRAIN_STEPS" in warned[0]
  assert gin_cli.unreferenced_macros(["TRAIN_STEPZ=3", "TRAIN_STEPS=4", "a.b=%X"]) == [
      "TRAIN_STEPZ"]
  gin.clear_config(clear_constants=True)


def test_includes_resolve_with_a_same_named_dir_in_the_cwd(tmp_path, monkeypatch):
  """`make quickstart` creates runs/ at the repo root; under `python -m` the cwd is on sys.path,
  so gin took `include 'runs/train.gin'` for package `runs` and crashed (TypeError)."""
  (tmp_path / "runs" / "quickstart").mkdir(parents=True)
  (tmp_path / "models").mkdir()
  monkeypatch.chdir(tmp_path)
  monkeypatch.syspath_prepend(str(tmp_path))
  for name in ("runs", "models"):
    monkeypatch.delitem(sys.modules, name, raising=False)
  exp = _parse(["quickstart.gin"], ["MODEL_DIR='/tmp/x'"])
  assert exp.task.dataset == "synthetic" and exp.model.size == "tiny"
  assert gin.query_parameter("%TRAIN_STEPS") == 1200  # from quickstart over runs/train.gin
  gin.clear_config(clear_constants=True)


def test_an_unbound_macro_names_its_file_line_and_close_names(tmp_path):
  (tmp_path / "bad.gin").write_text(
      "include 'quickstart.gin'\n# %TRAIN_STEPZ in a comment is not a use\n"
      "trainer.TrainerConfig.train_steps = %TRAIN_STEPZ\n")
  (tmp_path / "top.gin").write_text("include 'bad.gin'\n")
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit) as e:
    gin_cli.parse(["top.gin"], ["MODEL_DIR=None"], str(tmp_path))
  gin.clear_config(clear_constants=True)
  text = str(e.value)
  assert text.startswith("error: gin macro %TRAIN_STEPZ is used but never bound"), text
  assert "did you mean TRAIN_STEPS" in text
  assert f"{tmp_path / 'bad.gin'}, line 3: trainer.TrainerConfig.train_steps" in text
  assert "line 2" not in text and "# Macros" not in text and len(text.splitlines()) == 3
  with pytest.raises(SystemExit) as e:
    gin_cli.parse(["quickstart.gin"], ["MODEL_DIR=None", "trainer.TrainerConfig.seed = %SEEDD"],
                  "")
  gin.clear_config(clear_constants=True)
  assert "binding --gin.trainer.TrainerConfig.seed = %SEEDD" in str(e.value)
  assert "did you mean SEED" in str(e.value)
