"""persoma-train / persoma-eval end to end on a tiny T5 and tiny synthetic data (in-process):
T5X-style flags, MODEL_DIR, config.gin, TensorBoard events, checkpoints, test JSON, eval JSON
from a model dir or one step dir, and the bad-input errors."""

import json
import logging
import os

import gin
import pytest

from persoma.train import experiment as experiment_lib
from persoma.train import gin_cli, main_eval, main_train

TINY = [
    "--gin_file=gin/quickstart.gin",
    "--gin.MODEL_SIZE='tiny'", "--gin.experiment.ModelSpec.t5_overrides={}",
    "--gin.data_config.PersomaDataConfig.synthetic={'num_users': 160}",
    "--gin.HISTORY_SIZE=5", "--gin.INPUTS_LENGTH=16", "--gin.TARGETS_LENGTH=20",
    "--gin.TASK_PROMPT_LENGTH=2", "--gin.MLP_HIDDEN_DIM=16", "--gin.BASELINES=()",
    "--gin.TRAIN_STEPS=2", "--gin.EVAL_EVERY_STEPS=0", "--gin.BATCH_SIZE=4",
    "--gin.EVAL_BATCH_SIZE=8", "--gin.MAX_EVAL_EXAMPLES=8", "--gin.LOG_EVERY_STEPS=1",
    "--gin.WARMUP_STEPS=0", "--gin.SAVE_EVERY_STEPS=1",
]


def _last_json(capsys):
  out = capsys.readouterr().out.strip().splitlines()
  return json.loads(out[-1]), out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("run") / "m")
  gin.clear_config(clear_constants=True)
  assert main_train.main(TINY + [f"--gin.MODEL_DIR='{model_dir}'"]) == 0
  gin.clear_config(clear_constants=True)
  return model_dir


@pytest.mark.slow  # real T5 compile: ~65 s CPU
def test_train_writes_config_checkpoints_events_and_test_json(trained):
  files = os.listdir(trained)
  assert {"config.gin", "checkpoints", "best", "eval_test.json", "tensorboard",
          "environment.json"} <= set(files)
  assert "MODEL_SIZE = 'tiny'" in open(os.path.join(trained, "config.gin")).read()
  assert any(f.startswith("events.out.tfevents")
             for f in os.listdir(os.path.join(trained, "tensorboard")))
  res = json.load(open(os.path.join(trained, "eval_test.json")))
  assert set(res) == {"f1", "precision", "recall", "split", "step", "users", "f1_liked",
                      "f1_disliked"}
  assert res["split"] == "test" and res["users"] > 0 and res["step"] == 2
  assert sorted(int(s) for s in os.listdir(os.path.join(trained, "checkpoints"))
                if s.isdigit()) == [1, 2]
  env = json.load(open(os.path.join(trained, "environment.json")))  # where it ran
  assert len(env) == 1 and env[0]["step"] == 0 and env[0]["mesh"]["data"] >= 1
  assert len(env[0]["embeddings"]["sha256"]) == 64 and env[0]["cores"] >= 1


@pytest.mark.slow
def test_eval_prints_json_last_and_writes_it_beside_the_checkpoint(trained, capsys):
  gin.clear_config(clear_constants=True)
  assert main_eval.main(TINY + [f"--checkpoint={trained}", "--split=test", "--json"]) == 0
  res, _ = _last_json(capsys)
  assert set(res) == {"f1", "precision", "recall", "f1_liked", "f1_disliked", "split", "step",
                      "users"}
  assert res["split"] == "test" and res["step"] == 2  # the model dir's best checkpoint
  ref = json.load(open(os.path.join(trained, "eval_test.json")))
  assert res["f1"] == pytest.approx(ref["f1"]) and res["users"] == ref["users"]
  assert os.path.exists(os.path.join(trained, "best", "eval_test_step2.json"))
  # One step dir, and no --gin_file (the model dir's config.gin is used).
  gin.clear_config(clear_constants=True)
  step1 = os.path.join(trained, "checkpoints", "1")
  assert main_eval.main([f"--checkpoint={step1}", "--split=validation", "--json",
                         "--max_examples=4", "--predictions"]) == 0
  res, _ = _last_json(capsys)
  assert res["step"] == 1 and res["split"] == "validation" and res["users"] == 4
  written = json.load(open(os.path.join(trained, "checkpoints",
                                      "eval_validation_step1_max4.json")))
  assert 0.0 <= written["f1_liked"] <= 1.0 and 0.0 <= written["f1_disliked"] <= 1.0
  rows = [json.loads(l) for l in open(written["predictions_file"])]
  assert len(rows) == 4 and len({r["user_id"] for r in rows}) == 4
  assert all(r["target"].startswith("Liked Genres:") and isinstance(r["prediction"], str)
             for r in rows)
  gin.clear_config(clear_constants=True)


@pytest.mark.slow
def test_eval_thresholded_beam_marginals(trained, capsys):
  gin.clear_config(clear_constants=True)
  assert main_eval.main([f"--checkpoint={trained}", "--split=test", "--json", "--num_decodes=4",
                         "--predictions"]) == 0
  res, out = _last_json(capsys)
  assert res["num_decodes"] == 4 and 0.0 < res["threshold"] <= 1.0
  assert res["split"] == "test" and res["step"] == 2
  assert set(res["beam_top1"]) == {"f1", "precision", "recall", "f1_liked", "f1_disliked"}
  written = json.load(open(os.path.join(trained, "best", "eval_test_step2_beam4.json")))
  curve = written["validation_curve"]
  assert len(curve) == 23 and written["validation_f1"] == pytest.approx(max(curve.values()))
  assert curve[f"{written['threshold']:.2f}"] == pytest.approx(written["validation_f1"], abs=1e-4)
  sides = written["side_thresholds"]  # separate liked / disliked cuts, reported beside
  assert {"liked", "disliked", "validation_f1", "f1", "precision", "recall"} <= set(sides)
  assert sides["validation_f1"] >= written["validation_f1"] - 1e-9  # the pair includes (t, t)
  assert res["side_thresholds"]["f1"] == pytest.approx(sides["f1"])
  rows = [json.loads(l) for l in open(written["predictions_file"])]
  assert len(rows) == res["users"]
  assert all(r["prediction"].startswith("Liked Genres:") for r in rows)
  decoded = [json.loads(l) for l in open(written["decodes_file"])]  # every beam, per user
  assert written["decodes_file"].endswith("decodes_test_step2_beam4.jsonl")
  assert [d["user_id"] for d in decoded] == [r["user_id"] for r in rows]
  assert all(len(d["decodes"]) == 4 and d["target"] == r["target"] for d, r in zip(decoded, rows))
  assert "consensus" not in res  # a rationale readout only
  val_decoded = [json.loads(l) for l in open(written["validation_decodes_file"])]  # tuned on
  assert written["validation_decodes_file"].endswith("decodes_validation_step2_beam4.jsonl")
  assert len(val_decoded) == written["validation_users"] and all(
      len(d["decodes"]) == 4 for d in val_decoded)
  # A fixed threshold skips the validation pass; 1.0 keeps only classes every decode names.
  gin.clear_config(clear_constants=True)
  assert main_eval.main([f"--checkpoint={trained}", "--split=test", "--json", "--num_decodes=4",
                         "--threshold=1.0", "--max_examples=4"]) == 0
  res, _ = _last_json(capsys)
  assert res["threshold"] == 1.0 and "validation_f1" not in res and res["users"] == 4
  gin.clear_config(clear_constants=True)


@pytest.mark.slow
def test_eval_thresholded_sample_marginals(trained, capsys):
  gin.clear_config(clear_constants=True)
  args = [f"--checkpoint={trained}", "--split=test", "--json", "--num_decodes=4",
          "--decode_method=sample", "--temperature=2.0", "--max_examples=6"]
  assert main_eval.main(args) == 0
  res, out = _last_json(capsys)
  assert res["decode_method"] == "sample" and res["temperature"] == 2.0
  assert res["decode_seed"] == 0 and res["num_decodes"] == 4 and res["users"] == 6
  assert "beam_top1" not in res and set(res["sample_top1"]) == {"f1", "precision", "recall",
                                                                "f1_liked", "f1_disliked"}
  written = json.load(open(os.path.join(trained, "best",
                                      "eval_test_step2_sample4_t2_max6.json")))
  assert written["f1"] == pytest.approx(res["f1"])
  assert set(written["validation_curve"]) and 0.0 < written["threshold"] <= 1.0
  # The same seed repeats the figures; marginals of 4 samples are multiples of 1/4, so the
  # validation curve is flat between those cuts.
  gin.clear_config(clear_constants=True)
  assert main_eval.main(args) == 0
  again, _ = _last_json(capsys)
  assert again == res
  # Another seed writes its own file.
  gin.clear_config(clear_constants=True)
  assert main_eval.main(args + ["--decode_seed=5"]) == 0
  assert _last_json(capsys)[0]["decode_seed"] == 5
  assert os.path.exists(os.path.join(trained, "best",
                                     "eval_test_step2_sample4_t2_seed5_max6.json"))
  curve = written["validation_curve"]
  assert curve["0.30"] == curve["0.35"] == curve["0.40"] == curve["0.45"] == curve["0.50"]
  gin.clear_config(clear_constants=True)


@pytest.mark.slow
def test_partial_eval_never_replaces_the_full_split_result(trained, capsys):
  gin.clear_config(clear_constants=True)
  assert main_eval.main([f"--checkpoint={trained}", "--split=test", "--json"]) == 0
  full, _ = _last_json(capsys)
  full_file = os.path.join(trained, "best", "eval_test_step2.json")
  before = open(full_file).read()
  assert full["users"] > 3 and "max_examples" not in full
  gin.clear_config(clear_constants=True)
  assert main_eval.main([f"--checkpoint={trained}", "--split=test", "--json",
                         "--max_examples=3", "--predictions"]) == 0
  part, _ = _last_json(capsys)
  assert part["users"] == 3 and part["max_examples"] == 3
  assert open(full_file).read() == before  # the full-split file is untouched
  written = json.load(open(os.path.join(trained, "best", "eval_test_step2_max3.json")))
  assert written["users"] == 3 and written["max_examples"] == 3
  assert written["predictions_file"].endswith("inferences_test_step2_max3.jsonl")
  gin.clear_config(clear_constants=True)


@pytest.mark.slow
def test_eval_with_another_encoder_width_is_one_clear_error(trained, capsys, tmp_path):
  """A narrower ENCODER than the run's changes the adapter's input width: one error naming
  the parameter and both shapes (not every checkpoint 'unreadable'), and nothing is moved."""
  from persoma.train import main_infer  # pylint: disable=g-import-not-at-top
  before = {d: sorted(os.listdir(os.path.join(trained, d))) for d in ("best", "checkpoints")}
  msg = (r"error: checkpoint .*best/2/state does not fit this model: parameter 'params/.*' "
         r"has shape \(\d+, \d+\) in the checkpoint but \(\d+, \d+\) in the model.*not "
         r"corruption.*config.gin")
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit, match=msg):
    main_eval.main([f"--checkpoint={trained}", "--gin.ENCODER='hashing:32'", "--json"])
  hist = tmp_path / "h.json"
  hist.write_text(json.dumps({"history": [{"title": "Heat (1995)", "rating": 4}]}))
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit, match=msg):
    main_infer.main([f"--model_dir={trained}", f"--history={hist}",
                     "--gin.ENCODER='hashing:32'"])
  assert {d: sorted(os.listdir(os.path.join(trained, d))) for d in before} == before
  assert "unreadable" not in capsys.readouterr().err
  gin.clear_config(clear_constants=True)


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_eval_rejects_max_examples_below_one(tmp_path, capsys, bad):
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit):
    main_eval.main(TINY + [f"--checkpoint={tmp_path}", f"--max_examples={bad}"])
  assert f"--max_examples={bad}: pass a number of users >= 1" in capsys.readouterr().err
  gin.clear_config(clear_constants=True)
  assert main_eval.partial_suffix(None) == "" and main_eval.partial_suffix(3) == "_max3"


def test_eval_threshold_errors(tmp_path):
  gin.clear_config(clear_constants=True)
  with pytest.raises(ValueError, match="cannot score that split"):
    main_eval.main(TINY + [f"--checkpoint={tmp_path}", "--split=validation",
                           "--num_decodes=4"])
  gin.clear_config(clear_constants=True)
  for bad, match in (("abc", "number in"), ("1.5", r"in \(0, 1\]")):
    with pytest.raises(ValueError, match=match):
      main_eval.main(TINY + [f"--checkpoint={tmp_path}", "--num_decodes=4",
                             f"--threshold={bad}"])
    gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit):
    main_eval.main(TINY + [f"--checkpoint={tmp_path}", "--num_decodes=0"])
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit):  # sampling needs several samples
    main_eval.main(TINY + [f"--checkpoint={tmp_path}", "--decode_method=sample"])
  gin.clear_config(clear_constants=True)
  with pytest.raises(ValueError, match="--temperature=0.0: sampling needs a temperature > 0"):
    main_eval.main(TINY + [f"--checkpoint={tmp_path}", "--num_decodes=4",
                           "--decode_method=sample", "--temperature=0"])
  gin.clear_config(clear_constants=True)


def test_eval_readout_refuses_a_run_without_rationale_targets_before_reading_data(tmp_path,
                                                                                 capsys):
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit, match=r"^error: .*target_rationale is False"):
    main_eval.main(TINY + [f"--checkpoint={tmp_path}", "--readout=rationale"])
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit):  # argparse: not one of labels, rationale
    main_eval.main(TINY + [f"--checkpoint={tmp_path}", "--readout=rule"])
  with pytest.raises(SystemExit):  # stated ties rank a rationale's means: needs the readout
    main_eval.main(TINY + [f"--checkpoint={tmp_path}", "--readout_ties=stated"])
  assert "--readout_ties stated ranks the means a rationale states" in capsys.readouterr().err
  gin.clear_config(clear_constants=True)


@pytest.mark.slow
def test_eval_readout_scores_the_rule_on_each_decodes_rationale(trained, capsys):
  from persoma.metrics import readout, verbalizer, weighted  # pylint: disable=g-import-not-at-top
  gin.clear_config(clear_constants=True)
  args = TINY + [f"--checkpoint={trained}", "--split=test", "--json", "--readout=rationale",
                 "--gin.data_config.PersomaDataConfig.target_rationale=True",
                 "--gin.TARGETS_LENGTH=96"]
  assert main_eval.main(args + ["--predictions"]) == 0
  res, out = _last_json(capsys)
  assert res["readout"] == "rationale" and res["step"] == 2
  written = json.load(open(os.path.join(trained, "best", "eval_test_step2_readout.json")))
  assert written["f1"] == pytest.approx(res["f1"])
  _, targets, preds = main_eval.read_inferences(written["predictions_file"])
  assert written["predictions_file"].endswith("inferences_test_step2_readout.jsonl")
  assert all(formats_has_rationale(t) for t in targets)
  want = readout.RationaleReadout().score_texts(preds, targets)
  assert res["f1"] == pytest.approx(want["f1"]) and res["recall"] == pytest.approx(
      want["recall"])
  assert res["no_rationale"] == readout.RationaleReadout().pairs(preds)[1]
  from persoma.train import evaluation  # pylint: disable=g-import-not-at-top
  assert res["stated"]["f1"] == pytest.approx(evaluation.score_texts(preds, targets)["f1"])
  gin.clear_config(clear_constants=True)
  assert main_eval.main(args + ["--readout_ties=stated"]) == 0  # its own file, same decodes
  tied, _ = _last_json(capsys)
  assert tied["readout_ties"] == "stated" and os.path.exists(
      os.path.join(trained, "best", "eval_test_step2_readout_stated_ties.json"))
  assert tied["f1"] == pytest.approx(
      readout.RationaleReadout(ties="stated").score_texts(preds, targets)["f1"])
  gin.clear_config(clear_constants=True)
  assert main_eval.main(args + ["--num_decodes=4", "--threshold=0.5", "--max_examples=6",
                                "--predictions"]) == 0
  res, _ = _last_json(capsys)
  assert res["readout"] == "rationale" and res["num_decodes"] == 4 and res["users"] == 6
  assert os.path.exists(os.path.join(trained, "best", "eval_test_step2_beam4_readout_max6.json"))
  # the consensus of each user's 4 decodes, scored from the decodes file it writes
  written = json.load(open(os.path.join(trained, "best",
                                      "eval_test_step2_beam4_readout_max6.json")))
  assert written["consensus"] == res["consensus"]
  rows = [json.loads(l) for l in open(written["decodes_file"])]
  reader = readout.RationaleReadout()
  truth = verbalizer.indicator_matrix([(verbalizer.parse(r["target"]).liked,
                                        verbalizer.parse(r["target"]).disliked) for r in rows])
  for center in ("median", "mean"):
    got = weighted.weighted_prf(truth, reader.consensus_indicators(
        [r["decodes"] for r in rows], center))
    assert res["consensus"][center]["f1"] == pytest.approx(got["f1"])
    assert "validation_f1" not in res["consensus"][center]  # a fixed cut: no validation pass
  gin.clear_config(clear_constants=True)


def formats_has_rationale(text: str) -> bool:
  from persoma.data import formats  # pylint: disable=g-import-not-at-top
  return formats.parse_rationale(text) is not None


def test_eval_and_infer_refuse_a_bad_override_in_one_line_before_reading_data(tmp_path):
  from persoma.train import main_infer  # pylint: disable=g-import-not-at-top
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit, match=r"^error: .*SAMPLER.*'fancy'") as e:
    main_eval.main(TINY + [f"--checkpoint={tmp_path}", "--gin.SAMPLER='fancy'"])
  assert "\n" not in str(e.value)  # one line, not gin's 'In call to configurable' trail
  gin.clear_config(clear_constants=True)
  (tmp_path / "config.gin").write_text("include 'quickstart.gin'\nMODEL_DIR = None\n")
  hist = tmp_path / "h.json"
  hist.write_text(json.dumps({"history": [{"title": "Heat (1995)", "rating": 4}]}))
  with pytest.raises(SystemExit, match=r"^error: .*HISTORY_SIZE") as e:
    main_infer.main([f"--model_dir={tmp_path}", f"--history={hist}", "--gin.HISTORY_SIZE=0"])
  assert "\n" not in str(e.value)
  gin.clear_config(clear_constants=True)


def test_model_dir_with_another_config_is_refused(tmp_path):
  (tmp_path / "config.gin").write_text("# another run\nMODEL_SIZE = 'xxl'\n")
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit, match="different configuration") as e:
    main_train.main(TINY + [f"--gin.MODEL_DIR='{tmp_path}'"])
  assert "MODEL_SIZE = 'xxl'" in str(e.value)  # the diff names what differs
  assert (tmp_path / "config.gin").read_text().startswith("# another run")  # untouched
  gin.clear_config(clear_constants=True)


def test_a_resumed_run_may_change_only_its_checkpoint_cadence(tmp_path):
  saved = "A = 1\nSAVE_EVERY_STEPS = 500\nKEEP_CHECKPOINTS = 2\nx.y = %SAVE_EVERY_STEPS\n"
  (tmp_path / "config.gin").write_text(saved)
  now = saved.replace("SAVE_EVERY_STEPS = 500", "SAVE_EVERY_STEPS = 100")
  gin_cli.check_model_dir_config(str(tmp_path), now)
  assert (tmp_path / "config.gin").read_text() == now  # rewritten with the new cadence
  with pytest.raises(SystemExit, match="different configuration") as e:
    gin_cli.check_model_dir_config(str(tmp_path), now.replace("A = 1", "A = 2"))
  assert "A = 2" in str(e.value) and (tmp_path / "config.gin").read_text() == now


def test_a_moved_or_respelled_model_dir_is_the_same_run(tmp_path):
  old_dir = "/data/runs/" + "long_directory_name/" * 5 + "c"  # gin wraps it over two lines
  saved = f"A = 1\nMODEL_DIR = '{old_dir}'\nZ = 2\n"
  gin.clear_config(clear_constants=True)
  gin.parse_config(saved)
  saved = gin.config_str()
  gin.clear_config(clear_constants=True)
  assert "MODEL_DIR = \\\n    '" in saved  # the case the comparison must handle
  (tmp_path / "config.gin").write_text(saved)
  now = saved.replace(old_dir, str(tmp_path))
  gin_cli.check_model_dir_config(str(tmp_path), now)
  assert (tmp_path / "config.gin").read_text() == now  # rewritten: names where it is now
  with pytest.raises(SystemExit, match="different configuration"):
    gin_cli.check_model_dir_config(str(tmp_path), now.replace("A = 1", "A = 2"))


def test_persoma_train_resumes_a_copied_run_dir(tmp_path, monkeypatch):
  """`cp -r runs/c runs/moved` then MODEL_DIR=runs/moved (relative) gets past the config check
  (to the data load, replaced here by an error)."""
  gin.clear_config(clear_constants=True)
  bindings, _ = gin_cli.split_gin_args(TINY[1:])
  gin_cli.parse(["gin/quickstart.gin"], bindings + [f"MODEL_DIR='{tmp_path / 'runs' / 'c'}'"],
                "")
  (tmp_path / "runs" / "moved").mkdir(parents=True)
  (tmp_path / "runs" / "moved" / "config.gin").write_text(gin.config_str())
  gin.clear_config(clear_constants=True)

  def fail(self, split, history_as_index=None):
    raise RuntimeError("past the config check")

  monkeypatch.setattr(experiment_lib.TaskData, "load", fail)
  monkeypatch.chdir(tmp_path)
  with pytest.raises(RuntimeError, match="past the config check"):
    main_train.main(TINY + ["--gin.MODEL_DIR='runs/moved'"])
  gin.clear_config(clear_constants=True)


def test_train_readout_is_checked_before_anything_is_written(tmp_path):
  gin.clear_config(clear_constants=True)
  model_dir = tmp_path / "m"
  with pytest.raises(SystemExit, match=r"train.readout='rule': expected 'labels' or"):
    main_train.main(TINY + ["--gin.main_train.train.readout='rule'",
                            f"--gin.MODEL_DIR='{model_dir}'"])
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit, match="target_rationale is False"):
    main_train.main(TINY + ["--gin.main_train.train.readout='rationale'",
                            f"--gin.MODEL_DIR='{model_dir}'"])
  gin.clear_config(clear_constants=True)
  assert not (model_dir / "config.gin").exists()


@pytest.mark.slow
def test_a_run_trained_with_the_readout_scores_it_as_persoma_eval_does(tmp_path, capsys):
  """Validation, the best checkpoint and the test JSON read labels from the rationale; the
  same checkpoint scored by `persoma-eval --readout rationale` gives the same test F1."""
  gin.clear_config(clear_constants=True)
  model_dir = str(tmp_path / "m")
  rationale = ["--gin.data_config.PersomaDataConfig.target_rationale=True",
               "--gin.TARGETS_LENGTH=96"]
  assert main_train.main(TINY + rationale + ["--gin.main_train.train.readout='rationale'",
                                             f"--gin.MODEL_DIR='{model_dir}'"]) == 0
  assert "labels read from the rationale" in capsys.readouterr().out
  trained = json.load(open(os.path.join(model_dir, "eval_test.json")))
  gin.clear_config(clear_constants=True)
  assert main_eval.main([f"--checkpoint={model_dir}", "--split=test", "--json",
                         "--readout=rationale"]) == 0
  res, _ = _last_json(capsys)
  assert res["f1"] == pytest.approx(trained["f1"]) and res["step"] == trained["step"]
  gin.clear_config(clear_constants=True)


def test_unknown_gin_key_and_missing_model_dir(tmp_path):
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit, match="NO_SUCH|no_such"):
    main_train.main(TINY + ["--gin.trainer.TrainerConfig.no_such=1",
                            f"--gin.MODEL_DIR='{tmp_path}'"])
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit, match="MODEL_DIR"):
    main_train.main(TINY)
  gin.clear_config(clear_constants=True)
  with pytest.raises(SystemExit, match="missing_file.gin"):
    main_train.main(["--gin_file=missing_file.gin"])
  gin.clear_config(clear_constants=True)


@pytest.mark.parametrize("mode", ["frozen", "lora"])
def test_frozen_or_lora_without_checkpoint_warns_loudly(mode, caplog):
  exp = experiment_lib.Experiment(training_mode=mode, initial_checkpoint_path=None)
  with caplog.at_level(logging.WARNING):
    assert exp.initial_params_loader() is None
  assert any("RANDOMLY INITIALISED" in r.getMessage() and mode in r.getMessage()
             for r in caplog.records)
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    experiment_lib.Experiment(training_mode="full").initial_params_loader()
  assert not caplog.records


def test_inference_files_read_back_and_bad_lines_name_file_and_line(tmp_path):
  path = str(tmp_path / "inferences_test_step5.jsonl")
  main_eval.write_inferences(path, ["Liked Genres: War.", "x"], ["t1", "t2"], [7, 9])
  assert main_eval.read_inferences(path) == ([7, 9], ["t1", "t2"], ["Liked Genres: War.", "x"])
  main_eval.write_inferences(path, ["p"], ["t"], None)
  assert main_eval.read_inferences(path) == ([None], ["t"], ["p"])
  with open(path, "w", encoding="utf-8") as f:
    f.write('{"user_id": 1, "target": "x", "prediction": "y"}\n\n{"user_id": 2}\n')
  with pytest.raises(ValueError, match=r"step5\.jsonl:3: not a persoma-eval inference line"):
    main_eval.read_inferences(path)
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n")
  with pytest.raises(ValueError, match="no inference lines"):
    main_eval.read_inferences(path)
