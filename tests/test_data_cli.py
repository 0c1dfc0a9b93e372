"""persoma-data stats / baseline: JSON as the last stdout line, errors, no jax/tf import."""

import json
import subprocess
import sys

import pytest

from persoma.data import cli


def _last_json(capsys):
  out = capsys.readouterr().out.strip().split("\n")
  return json.loads(out[-1]), out


def test_stats_json_synthetic(capsys):
  assert cli.main(["stats", "--json"]) == 0
  stats, lines = _last_json(capsys)
  assert len(lines) == 1
  assert stats["dataset"] == "synthetic" and stats["synthetic"] is True
  assert stats["users"] == sum(s["users"] for s in stats["splits"].values())
  assert set(stats["genre_table"]) == set(cli.genres_lib.GENRES)
  assert stats["mean_liked_genres"] > 0 and stats["ratings"] > 0
  assert stats["load"]["skipped_lines"] == {}


def test_stats_table_then_json(capsys):
  assert cli.main(["stats", "--synthetic_seed=2"]) == 0
  stats, lines = _last_json(capsys)
  assert "SYNTHETIC" in lines[0] and len(lines) > 20
  assert stats["load"]["files"][0].startswith("synthetic:") and "seed=2" in stats["load"][
      "files"][0]


def test_baseline_json(capsys):
  assert cli.main(["baseline", "--name=rule", "--history=20", "--sampler=random",
                   "--split=all", "--json"]) == 0
  res, _ = _last_json(capsys)
  assert set(res) >= {"f1", "precision", "recall", "users"}
  assert 0 < res["f1"] < 1 and res["users"] > 100 and res["synthetic"] is True


def _tiny_ml1m(root, extra_lines=()):
  """A 2-movie, 3-user ml-1m release under `root` (+ `extra_lines` appended to ratings.dat)."""
  d = root / "ml-1m"
  d.mkdir()
  (d / "movies.dat").write_text("1::A (1990)::Drama\n2::B (1991)::Comedy\n")
  rows = [f"{u}::{m}::{1 + (u * m) % 5}::{u * 10 + m}" for u in range(1, 4) for m in (1, 2)]
  (d / "ratings.dat").write_text("\n".join(rows + list(extra_lines)) + "\n")
  return d


def test_no_strict_skips_are_reported(tmp_path, capsys):
  _tiny_ml1m(tmp_path, ["bad line"])
  args = ["stats", "--dataset=movielens/1m", f"--data_dir={tmp_path}", "--min_item_ratings=1",
          "--min_user_ratings=1", "--json"]
  assert cli.main(args) == 2
  assert "ratings.dat:7" in capsys.readouterr().err
  assert cli.main(args + ["--no_strict"]) == 0
  stats, _ = _last_json(capsys)
  assert list(stats["load"]["skipped_lines"].values()) == [1]


def test_descriptions_beside_the_release_are_used_by_default_as_in_the_tasks(tmp_path, capsys):
  _tiny_ml1m(tmp_path)
  (tmp_path / "descriptions").mkdir()
  (tmp_path / "descriptions" / "ml-1m_descriptions.csv").write_text(
      "movieId,overview\n1,A plot.\n")
  args = ["stats", "--dataset=movielens/1m", f"--data_dir={tmp_path}", "--min_item_ratings=1",
          "--min_user_ratings=1", "--json"]
  assert cli.main(args) == 0
  assert _last_json(capsys)[0]["movies_with_description"] == 1
  assert cli.main(args + ["--descriptions=none"]) == 0
  assert _last_json(capsys)[0]["movies_with_description"] == 0


def test_data_dir_defaults_to_the_env_var_as_in_the_tasks(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv(cli.ENV_DATA_DIR, str(tmp_path))
  code = cli.main(["stats", "--dataset=movielens/1m", "--source=local"])
  assert code == 2 and str(tmp_path) in capsys.readouterr().err  # looked in the env folder


def test_missing_local_data_is_a_clear_error(tmp_path, capsys):
  code = cli.main(["baseline", "--name=counting", "--dataset=movielens/1m",
                   f"--data_dir={tmp_path}", "--source=local"])
  assert code == 2 and "ml-1m" in capsys.readouterr().err


def test_an_empty_split_and_an_off_scale_threshold_are_errors(tmp_path, capsys):
  _tiny_ml1m(tmp_path)
  base = ["baseline", "--name=rule", "--dataset=movielens/1m", f"--data_dir={tmp_path}",
          "--min_item_ratings=1", "--min_user_ratings=1", "--json"]
  assert cli.main(base + ["--split=test"]) == 2  # 3 users: none in the 5% test split
  assert "test split of movielens/1m has no users" in capsys.readouterr().err
  assert cli.main(["baseline", "--name=rule", "--like_threshold=9", "--json"]) == 2
  assert "like_threshold=9.0 is outside the 0-5 star scale" in capsys.readouterr().err


def test_unknown_choices_rejected():
  with pytest.raises(SystemExit):
    cli.main(["baseline", "--name=oracle"])
  with pytest.raises(SystemExit):
    cli.main(["baseline", "--name=rule", "--sampler=fancy"])


def test_module_entry_point_without_jax_or_tensorflow():
  code = ("import sys, runpy; sys.argv=['persoma-data','baseline','--name=counting','--json'];"
          "\ntry:\n  runpy.run_module('persoma.data.cli', run_name='__main__')\n"
          "except SystemExit as e:\n  assert not e.code, e.code\n"
          "import persoma.metrics, persoma.baselines\n"
          "print(json_loaded := 'jax' in sys.modules or 'tensorflow' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  lines = out.stdout.strip().split("\n")
  assert lines[-1] == "False"
  assert json.loads(lines[-2])["baseline"] == "counting"


def test_other_modules_register_subcommands(monkeypatch, capsys):
  """persoma.embeddings.cli.register(subparsers) plugs 'embed' into persoma-data."""
  import types  # pylint: disable=g-import-not-at-top
  fake = types.ModuleType("persoma.embeddings.cli")

  def register(subparsers):
    p = subparsers.add_parser("embed")
    cli.add_dataset_args(p)
    p.set_defaults(func=lambda args: {"embedded": cli.load_from_args(args).num_users})

  fake.register = register
  monkeypatch.setitem(sys.modules, "persoma.embeddings.cli", fake)
  assert cli.main(["embed", "--json"]) == 0
  res, _ = _last_json(capsys)
  assert res["embedded"] > 100
