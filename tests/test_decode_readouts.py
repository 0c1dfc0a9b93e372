"""`benchmarks/decode_readouts.py`: every readout of one sampled decode, from its files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import decode_readouts  # noqa: E402
from persoma.data import formats  # noqa: E402


def _text(means, liked, disliked):
  head = formats.format_rationale(list(means), list(means.values())) if means else ""
  return f"{head} {formats.format_target(liked, disliked)}".strip()


def _write(path, rows):
  path.write_text("".join(json.dumps({"user_id": i, "target": t, "decodes": d}) + "\n"
                          for i, (t, d) in enumerate(rows)))


def test_readouts_of_noisy_samples(tmp_path, capsys):
  # Default rule (3.5 / 3.0). Per user: the target, and 3 samples (the likeliest last) whose
  # stated labels are wrong and whose written means scatter around the truth; the first
  # misses Drama, the median of the three reads both right.
  truth = {"Drama": 4.0, "Horror": 2.5}
  target = _text(truth, ["Drama"], ["Horror"])
  samples = [_text({"Drama": 3.4, "Horror": 2.4}, ["Comedy"], []),
             _text({"Drama": 4.1, "Horror": 3.2}, ["Comedy"], []),
             _text({"Drama": 4.2, "Horror": 2.6}, ["Comedy"], [])]
  rows = [(target, samples)] * 4
  _write(tmp_path / "decodes_validation_step5_sample3_readout.jsonl", rows)
  test = tmp_path / "decodes_test_step5_sample3_readout.jsonl"
  _write(test, rows)
  out = tmp_path / "r.json"
  assert decode_readouts.main([str(test), "--json", str(out)]) == 0
  got = json.loads(out.read_text())[str(test)]["readouts"]  # keyed by the test file
  assert got["consensus (median), canonical ties"]["test"]["f1"] == pytest.approx(1.0)
  assert got["consensus (mean), stated ties"]["validation"]["f1"] == pytest.approx(1.0)
  assert got["marginals, stated"]["test"]["f1"] == 0.0  # every sample states Comedy only
  # read per sample: Drama in 2 of 3, Horror in 2 of 3; the cut tuned on validation finds it
  read = got["marginals, read, canonical ties"]
  assert read["test"]["f1"] == pytest.approx(1.0) and read["threshold"] <= 2 / 3
  # the likeliest sample is the last: Drama 4.2, Horror 2.6, both right
  assert got["likeliest sample, read, canonical ties"]["test"]["f1"] == pytest.approx(1.0)
  assert got["likeliest sample, stated"]["test"]["f1"] == 0.0
  printed = capsys.readouterr().out
  assert "defaults (no config.gin above the file)" in printed
  assert json.loads(printed.strip().splitlines()[-1])["readouts"] == got


def test_bad_files_are_clear_errors(tmp_path, capsys):
  beam = tmp_path / "decodes_test_step5_beam4.jsonl"
  beam.write_text("")
  with pytest.raises(SystemExit):
    decode_readouts.main([str(beam)])
  assert "not a beam marginal" in capsys.readouterr().err
  test = tmp_path / "decodes_test_step5_sample2.jsonl"
  test.write_text(json.dumps({"target": "x", "decodes": ["a", "b"]}) + "\n")
  with pytest.raises(SystemExit, match=r"decodes_validation_step5_sample2.jsonl: No such"):
    decode_readouts.main([str(test)])
  bad = tmp_path / "decodes_validation_step5_sample2.jsonl"
  bad.write_text(json.dumps({"target": "x", "decodes": ["a", "b"]}) + "\n{not json\n")
  with pytest.raises(SystemExit, match=r"decodes_validation_step5_sample2.jsonl:2: not a "):
    decode_readouts.main([str(test)])


def test_json_keeps_the_entries_of_other_files_and_refuses_what_it_cannot_extend(tmp_path):
  rows = [(_text({"Drama": 4.0}, ["Drama"], []), [_text({"Drama": 4.2}, [], [])] * 2)] * 3
  tests = []
  for run in ("a", "b"):
    (tmp_path / run).mkdir()
    _write(tmp_path / run / "decodes_validation_step5_sample2_readout.jsonl", rows)
    tests.append(tmp_path / run / "decodes_test_step5_sample2_readout.jsonl")
    _write(tests[-1], rows)
  out = tmp_path / "r.json"
  out.write_text(json.dumps({"kept": {"readouts": {}}}))
  for t in tests:
    assert decode_readouts.main([str(t), "--json", str(out)]) == 0
  got = json.loads(out.read_text())
  assert sorted(got) == sorted(["kept", *map(str, tests)])
  assert got[str(tests[1])]["test_file"] == str(tests[1])
  assert got[str(tests[0])]["readouts"]["consensus (median), canonical ties"]["test"]["f1"] == (
      pytest.approx(1.0))
  out.write_text("[1, 2]")
  with pytest.raises(SystemExit, match=r"r\.json: holds a JSON list, not a dict"):
    decode_readouts.main([str(tests[0]), "--json", str(out)])
  assert out.read_text() == "[1, 2]"


def _run(tmp_path, name: str, rows) -> Path:
  (tmp_path / name).mkdir()
  _write(tmp_path / name / "decodes_validation_step5_sample2_readout.jsonl", rows)
  _write(tmp_path / name / "decodes_test_step5_sample2_readout.jsonl", rows)
  return tmp_path / name / "decodes_test_step5_sample2_readout.jsonl"


def test_several_runs_pool_each_users_decodes(tmp_path, capsys):
  # Default rule. Run a writes Drama 3.4 in both samples (not liked), run b 4.2 and 4.3: alone,
  # a's consensus misses Drama; pooled, the median of 3.4, 3.4, 4.2, 4.3 is 3.8, liked.
  target = _text({"Drama": 4.0}, ["Drama"], [])
  a = _run(tmp_path, "a", [(target, [_text({"Drama": 3.4}, [], [])] * 2)] * 3)
  b = _run(tmp_path, "b", [(target, [_text({"Drama": 4.2}, [], []),
                                     _text({"Drama": 4.3}, [], [])])] * 3)
  out = tmp_path / "r.json"
  assert decode_readouts.main([str(a), "--json", str(out)]) == 0
  assert decode_readouts.main([str(a), str(b), "--json", str(out)]) == 0
  got = json.loads(out.read_text())
  alone, pooled = got[str(a)]["readouts"], got[f"{a} + {b}"]["readouts"]
  assert alone["consensus (median), canonical ties"]["test"]["f1"] == 0.0
  assert pooled["consensus (median), canonical ties"]["test"]["f1"] == pytest.approx(1.0)
  assert not any(k.startswith("likeliest") for k in pooled)  # no one likeliest in a pool
  assert any(k.startswith("likeliest") for k in alone)
  assert "4 decodes each" in capsys.readouterr().out
  # runs of other users, or of another rule, are refused before anything is written
  before = out.read_text()
  c = _run(tmp_path, "c", [(target, [_text({"Drama": 4.2}, [], [])] * 2)] * 2)
  with pytest.raises(SystemExit, match=r"c/decodes_validation_.* and .*a/decodes_validation_"
                     r".* hold different users"):
    decode_readouts.main([str(a), str(c), "--json", str(out)])
  (tmp_path / "b" / "config.gin").write_text(
      "from __gin__ import dynamic_registration\nfrom persoma.data import labels\n"
      "from persoma.seqio_tasks import config as data_config"
      "\n\ndata_config.PersomaDataConfig.label_config = @labels.LabelConfig()\n"
      "labels.LabelConfig.like_threshold = 3.9\n")
  with pytest.raises(SystemExit, match=r"b/decodes_test_.*the runs must share one rule"):
    decode_readouts.main([str(a), str(b), "--json", str(out)])
  assert out.read_text() == before
  with pytest.raises(SystemExit):
    decode_readouts.main([str(a), str(b), "--validation", str(a)])
  assert "--validation names the validation decodes of one test_file" in (
      capsys.readouterr().err)
