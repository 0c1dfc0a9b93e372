"""`benchmarks/rationale_check.py`: scores written rationales and the labels that follow them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import rationale_check  # noqa: E402
from persoma.data import formats  # noqa: E402


def _line(target_rat, target_lab, pred_rat, pred_lab, header=formats.RATIONALE_HEADER):
  def text(rat, lab):
    head = (formats.format_rationale(list(rat), list(rat.values()), header) if rat is not None
            else "")
    return f"{head} {formats.format_target(*lab)}".strip()
  return json.dumps({"user_id": 1, "target": text(target_rat, target_lab),
                     "prediction": text(pred_rat, pred_lab)})


def test_figures_of_a_small_predictions_file(tmp_path, capsys):
  path = tmp_path / "inferences_test_step5.jsonl"
  path.write_text("\n".join([
      # exact rationale; labels follow it (in another order) and match the target
      _line({"Action": 4.0, "Drama": 4.5, "War": 2.5}, (("Drama", "Action"), ("War",)),
            {"Action": 4.0, "Drama": 4.5, "War": 2.5}, (("Action", "Drama"), ("War",))),
      # one genre missed, one added, one mean across the like threshold; labels ignore it
      _line({"Comedy": 3.6, "Drama": 3.2}, (("Comedy",), ()),
            {"Comedy": 3.4, "Horror": 2.0}, (("Drama",), ())),
      # no rationale written at all
      _line({"Drama": 4.5}, (("Drama",), ()), None, (("Drama",), ())),
  ]) + "\n")
  out = tmp_path / "o.json"
  assert rationale_check.main([str(path), "--json", str(out)]) == 0
  got = json.loads(out.read_text())[str(path)]  # not under the home directory: as given
  assert got["users"] == 3 and got["no_rationale"] == 1
  assert got["genre_precision"] == pytest.approx(4 / 5)  # Action, Drama, War, Comedy of 5
  assert got["genre_recall"] == pytest.approx(4 / 6)
  assert got["genre_set_exact"] == pytest.approx(1 / 3)
  assert got["mean_abs_error"] == pytest.approx(0.2 / 4)
  assert got["threshold_side_flips"] == pytest.approx(1 / 4)  # Comedy 3.6 -> 3.4
  assert got["f1_rule_on_shown"] == pytest.approx(1.0)
  assert got["f1_model_labels"] < 1.0 and got["f1_rule_on_written"] < 1.0
  # user 1 follows its rationale; user 2's rule on 'Comedy 3.4, Horror 2.0' is ((), (Horror,)),
  # not the model's (Drama); user 3 wrote none, so the rule names nothing, not the model's Drama
  assert got["labels_follow_own_rationale"] == pytest.approx(1 / 3)
  assert "genre_set_exact: 0.3333" in capsys.readouterr().out


def test_liked_labels_where_the_rule_must_rank_more_than_three_genres(tmp_path):
  four = {"Action": 4.0, "Comedy": 3.9, "Drama": 4.5, "War": 4.2, "Horror": 2.0}
  path = tmp_path / "p.jsonl"
  path.write_text("\n".join([
      # 4 genres over 3.5: the top 3 are Drama, War, Action; the model swaps Action for Comedy
      _line(four, (("Drama", "War", "Action"), ("Horror",)),
            four, (("Drama", "War", "Comedy"), ("Horror",))),
      # no ranking needed; liked right, disliked wrong
      _line({"Drama": 4.5, "War": 2.5}, (("Drama",), ("War",)),
            {"Drama": 4.5, "War": 2.5}, (("Drama",), ())),
  ]) + "\n")
  got = rationale_check.check(str(path))
  assert got["liked_must_rank"] == pytest.approx(1 / 2)
  assert got["liked_follow_where_ranked"] == 0.0
  assert got["liked_follow_own_rationale"] == pytest.approx(1 / 2)
  assert got["disliked_follow_own_rationale"] == pytest.approx(1 / 2)
  assert got["labels_follow_own_rationale"] == 0.0


def test_bad_files_are_one_error_naming_the_file_and_line(tmp_path):
  bad = tmp_path / "bad.jsonl"
  bad.write_text(_line({"War": 2.0}, ((), ("War",)), {}, ((), ())) + "\n{not json\n")
  with pytest.raises(SystemExit, match=r"bad.jsonl:2: not a persoma-eval inference line"):
    rationale_check.main([str(bad)])
  plain = tmp_path / "plain.jsonl"
  plain.write_text(json.dumps({"target": "Liked Genres: War. Not Liked Genres: None",
                               "prediction": "Liked Genres: None. Not Liked Genres: None"}) + "\n")
  with pytest.raises(SystemExit, match="has no rationale"):
    rationale_check.main([str(plain)])
  with pytest.raises(SystemExit, match="missing.jsonl"):
    rationale_check.main([str(tmp_path / "missing.jsonl")])


def test_json_out_keeps_the_figures_of_other_files(tmp_path):
  one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
  for path, mean in ((one, 4.5), (two, 2.5)):
    path.write_text(_line({"Drama": mean}, ((), ()), {"Drama": mean}, ((), ())) + "\n")
  out = tmp_path / "o.json"
  assert rationale_check.main([str(one), "--json", str(out)]) == 0
  assert rationale_check.main([str(two), "--json", str(out)]) == 0
  assert set(json.loads(out.read_text())) == {str(one), str(two)}
  out.write_text("[]")
  with pytest.raises(SystemExit, match=f"--json {out}: holds a JSON list, not a dict"):
    rationale_check.main([str(one), "--json", str(out)])
  assert out.read_text() == "[]"


def test_json_keys_one_entry_per_file_with_home_as_tilde(tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  monkeypatch.chdir(tmp_path)
  (tmp_path / "runs").mkdir()
  path = tmp_path / "runs" / "inferences_test_step5.jsonl"
  path.write_text(_line({"Drama": 4.5}, (("Drama",), ()), {"Drama": 4.5}, (("Drama",), ())))
  out = tmp_path / "o.json"
  out.write_text(json.dumps({"other": {"users": 9}}))
  for spelling in (str(path), "runs/inferences_test_step5.jsonl", "~/runs/../runs/"
                   "inferences_test_step5.jsonl"):
    assert rationale_check.main([spelling, "--json", str(out)]) == 0
  got = json.loads(out.read_text())
  assert sorted(got) == ["other", "~/runs/inferences_test_step5.jsonl"]
  assert got["~/runs/inferences_test_step5.jsonl"]["users"] == 1


_TUNED_CONFIG = """\
from __gin__ import dynamic_registration
from persoma.data import labels
from persoma.seqio_tasks import config as data_config

data_config.PersomaDataConfig.target_rationale = True
data_config.PersomaDataConfig.shown_label_config = @shown/labels.LabelConfig()
shown/labels.LabelConfig.min_genre_count = 2
shown/labels.LabelConfig.like_threshold = 3.65
shown/labels.LabelConfig.dislike_threshold = 2.7
shown/labels.LabelConfig.max_disliked = 2
"""


def test_the_rule_is_the_runs_own_from_its_config_gin(tmp_path, capsys):
  """Under the run's tuned rule (like > 3.65, at most 2 disliked) the model follows its
  rationale; under the default rule (like > 3.5, 3 disliked) the same file does not."""
  best = tmp_path / "model" / "best"
  best.mkdir(parents=True)
  (tmp_path / "model" / "config.gin").write_text(_TUNED_CONFIG)
  rat = {"Action": 3.6, "Drama": 4.5, "War": 2.0, "Horror": 2.2, "Crime": 2.6}
  path = best / "inferences_test_step5.jsonl"
  path.write_text(_line(rat, (("Drama",), ("War", "Horror")),
                        rat, (("Drama",), ("War", "Horror"))) + "\n")
  cfg, source, whole = rationale_check.run_rules(str(path))
  assert (cfg.min_genre_count, cfg.like_threshold, cfg.max_disliked) == (2, 3.65, 2)
  assert "config.gin: shown_label_config" in source and whole is None
  out = tmp_path / "o.json"
  assert rationale_check.main([str(path), "--json", str(out)]) == 0
  run = json.loads(out.read_text())[str(path)]
  assert run["labels_follow_own_rationale"] == 1.0 and run["f1_rule_on_shown"] == 1.0
  assert "liked > 3.65" in run["rule"] and "config.gin" in run["rule"]
  assert "rule: min 2 movies, liked > 3.65" in capsys.readouterr().out
  assert rationale_check.main([str(path), "--rule", "default", "--json", str(out)]) == 0
  default = json.loads(out.read_text())[str(path)]
  assert default["labels_follow_own_rationale"] == 0.0  # Action liked, Crime disliked too
  assert default["rule"].startswith("min 3 movies, liked > 3.5") and "--rule default" in (
      default["rule"])


def test_whole_rationales_are_read_under_the_label_rule_of_a_whole_rationale_run(tmp_path):
  """With whole_rationale in the run's config, a `Whole:` row follows the default rule (Action
  3.6 liked, 3 disliked) and a `Shown:` row the tuned one; without it both follow the tuned."""
  best = tmp_path / "model" / "best"
  best.mkdir(parents=True)
  config = tmp_path / "model" / "config.gin"
  config.write_text(_TUNED_CONFIG + "data_config.PersomaDataConfig.whole_rationale = True\n")
  rat = {"Action": 3.6, "Drama": 4.5, "War": 2.0, "Horror": 2.2, "Crime": 2.6}
  default_labels = (("Drama", "Action"), ("War", "Horror", "Crime"))
  tuned_labels = (("Drama",), ("War", "Horror"))
  path = best / "inferences_test_step5.jsonl"
  path.write_text("\n".join([
      _line(rat, default_labels, rat, default_labels, formats.WHOLE_RATIONALE_HEADER),
      _line(rat, tuned_labels, rat, tuned_labels)]) + "\n")
  assert rationale_check.run_rules(str(path))[2] == rationale_check.labels_lib.LabelConfig()
  out = tmp_path / "o.json"
  assert rationale_check.main([str(path), "--json", str(out)]) == 0
  run = json.loads(out.read_text())[str(path)]
  assert run["whole_rows"] == 1 and run["whole_rule"].startswith("min 3 movies, liked > 3.5")
  assert run["labels_follow_own_rationale"] == 1.0 and run["f1_rule_on_shown"] == 1.0
  config.write_text(_TUNED_CONFIG)
  assert rationale_check.run_rules(str(path))[2] is None
  assert rationale_check.main([str(path), "--json", str(out)]) == 0
  run = json.loads(out.read_text())[str(path)]
  assert run["labels_follow_own_rationale"] == 0.5 and "whole_rule" not in run


def test_a_run_config_that_does_not_parse_is_one_error_naming_it(tmp_path):
  (tmp_path / "config.gin").write_text("data_config.PersomaDataConfig.nope = 1\n")
  path = tmp_path / "inferences_test_step5.jsonl"
  path.write_text(_line({"Drama": 4.5}, (("Drama",), ()), {"Drama": 4.5}, (("Drama",), ())))
  with pytest.raises(SystemExit, match="bad gin configuration"):
    rationale_check.main([str(path)])
  (tmp_path / "config.gin").write_text("from __gin__ import dynamic_registration\n"
                                       "from persoma.seqio_tasks import config as data_config\n"
                                       "data_config.PersomaDataConfig.nope = 1\n")
  with pytest.raises(SystemExit, match=r"config.gin"):
    rationale_check.main([str(path)])


def test_stated_ties_rank_equal_written_means_by_the_models_labels(tmp_path):
  # Four genres at 4.0 (the rule keeps 3): the target's counts put War in, which the
  # rationale cannot say; the model states War, so its labels break the tie the right way
  tied = {"Action": 4.0, "Comedy": 4.0, "Drama": 4.0, "War": 4.0}
  path = tmp_path / "p.jsonl"
  path.write_text(_line(tied, (("War", "Action", "Comedy"), ()),
                        tied, (("War", "Action", "Comedy"), ())) + "\n")
  got = rationale_check.check(str(path))
  assert got["f1_rule_on_written"] < 1.0  # canonical ties: Action, Comedy, Drama
  assert got["f1_rule_on_written_stated_ties"] == pytest.approx(1.0)


def test_written_counts_rank_ties_and_are_scored_where_the_run_writes_them(tmp_path):
  # as above, four genres at 4.0, but written with counts: War's 9 movies rank it first
  genres, means = ["Action", "Comedy", "Drama", "War"], [4.0] * 4

  def text(counts, lab):
    return f"{formats.format_rationale(genres, means, counts=counts)} {formats.format_target(*lab)}"

  labs = (("War", "Action", "Comedy"), ())
  path = tmp_path / "p.jsonl"
  path.write_text(json.dumps({"user_id": 1, "target": text([5, 5, 4, 9], labs),
                              "prediction": text([5, 5, 4, 8], ((), ()))}) + "\n")
  got = rationale_check.check(str(path))
  assert got["f1_rule_on_shown"] == pytest.approx(1.0)  # counts break the target's tie
  assert got["f1_rule_on_written"] == pytest.approx(1.0)  # War's written 8 still ranks first
  assert got["count_exact"] == pytest.approx(3 / 4)
  assert got["count_mean_abs_error"] == pytest.approx(1 / 4)
  assert got["f1_model_labels"] < 1.0
  plain = tmp_path / "plain.jsonl"
  plain.write_text(_line(dict(zip(genres, means)), labs, dict(zip(genres, means)), labs) + "\n")
  plain_got = rationale_check.check(str(plain))
  assert np.isnan(plain_got["count_exact"]) and np.isnan(plain_got["count_mean_abs_error"])
