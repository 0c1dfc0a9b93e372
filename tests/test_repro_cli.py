"""The command line of benchmarks/reproduce.py (repro.cli): flag checks, refused folders, and
which invocations may rewrite the published page."""

from __future__ import annotations

import pytest

from repro_support import REPO  # first: puts benchmarks/ on sys.path
import reproduce
from repro import cli
from repro import plan as plan_lib


def test_flags_are_checked_and_normalised(tmp_path, capsys):
  base = ["--dataset", "synthetic", "--work_dir", str(tmp_path / "w")]
  a = reproduce.parse_args(base + ["--only", "history,persoma_mlp-*", "--only", "cost"])
  assert a.only == ["history", "persoma_mlp-*", "cost"]
  assert a.ledger_dir is None  # no ledger for a smoke dataset
  assert reproduce.parse_args(["--work_dir", str(tmp_path / "w")]).ledger_dir == str(
      cli.DEFAULT_LEDGER)
  assert reproduce.parse_args(["--ledger_dir", "None"]).ledger_dir is None
  assert (a.num_decodes, a.num_samples) == (16, 64)
  for bad, name in ((["--save_every", "0"], "--save_every"), (["--num_decodes", "1"],
                    "--num_decodes"), (["--num_samples", "-2"], "--num_samples")):
    with pytest.raises(SystemExit):
      reproduce.parse_args(base + bad)
    assert name in capsys.readouterr().err, bad
  with pytest.raises(SystemExit):
    reproduce.parse_args(["--help"])
  out = capsys.readouterr().out  # --help carries the program's docstring
  assert "Reproduce the papers' experiments" in out and "smoke run of the harness" in out
  assert reproduce.parse_args(base).seed == 0


def test_only_the_program_itself_replaces_the_published_page(tmp_path):
  real = dict(dataset="movielens_1m", data_dir="/data")
  assert cli.docs_dir_for(plan_lib.Settings(**real), None, tmp_path) == REPO / "docs"
  assert cli.docs_dir_for(plan_lib.Settings(**real, save_every=50), None,
                          tmp_path) == REPO / "docs"
  for other in (dict(seed=1), dict(train_steps=10), dict(model_size="tiny"), dict(cost_batch=4),
                dict(dataset="synthetic")):
    s = plan_lib.Settings(**{**real, **other})
    assert cli.docs_dir_for(s, None, tmp_path) == tmp_path / "docs", other
  assert cli.docs_dir_for(plan_lib.Settings(seed=1), str(tmp_path / "d"), tmp_path) == (
      tmp_path / "d")
  # A side work dir without the repository's ledger (retrained twins) keeps its page to itself.
  for ledger in (None, str(tmp_path / "other_ledger")):
    assert cli.docs_dir_for(plan_lib.Settings(**real), None, tmp_path,
                            ledger) == tmp_path / "docs", ledger
  assert cli.docs_dir_for(plan_lib.Settings(**real), None, tmp_path,
                          str(cli.DEFAULT_LEDGER)) == REPO / "docs"


def test_work_dir_inside_repo_and_missing_data_are_refused(tmp_path):
  with pytest.raises(SystemExit, match="inside the repository"):
    reproduce.main(["--dataset", "synthetic", "--work_dir", str(REPO / "tmp_repro"), "--list"])
  with pytest.raises(SystemExit, match="does not exist"):
    reproduce.main(["--data_dir", str(tmp_path / "absent"), "--work_dir", str(tmp_path / "w"),
                    "--list"])
  (tmp_path / "empty").mkdir()
  with pytest.raises(SystemExit, match="no ml-1m release"):
    reproduce.main(["--data_dir", str(tmp_path / "empty"), "--work_dir", str(tmp_path / "w"),
                    "--list"])
