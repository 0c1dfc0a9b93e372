"""`benchmarks/marginal_decoding.py`: finds runs, reuses written beam results, tabulates them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import marginal_decoding  # noqa: E402


def _run(root: Path, run_id: str, greedy: float, beam: dict | None) -> Path:
  model = root / "runs" / run_id / "model"
  (model / "best" / "2500").mkdir(parents=True)
  (model / "eval_test.json").write_text(json.dumps(
      {"f1": greedy, "precision": greedy, "recall": greedy, "f1_liked": greedy,
       "f1_disliked": greedy}))
  if beam is not None:
    (model / "best" / "eval_test_step2500_beam16.json").write_text(json.dumps(beam))
  return model


def _beam(f1: float) -> dict:
  m = {"f1": f1, "precision": 0.5, "recall": 0.6, "f1_liked": 0.55, "f1_disliked": 0.3}
  return {**m, "step": 2500, "users": 280, "num_decodes": 16, "threshold": 0.3,
          "validation_f1": f1 - 0.01, "beam_top1": dict(m, f1=f1 - 0.02)}


def test_tabulates_written_results_without_decoding(tmp_path, capsys):
  wd = tmp_path / "work"
  _run(wd, "persoma_mlp-h50", 0.30, _beam(0.40))
  _run(wd, "persoma_pool-h10", 0.25, _beam(0.33))
  (wd / "runs" / "unfinished" / "model").mkdir(parents=True)  # no best checkpoint: skipped
  out = tmp_path / "m.json"
  assert marginal_decoding.main(["--work_dir", str(wd), "--only", "persoma_*",
                                 "--out", str(out)]) == 0
  rows = json.loads(out.read_text())
  assert [r["run_id"] for r in rows] == ["persoma_mlp-h50", "persoma_pool-h10"]
  assert rows[0]["greedy"]["f1"] == 0.30 and rows[0]["marginals"]["f1"] == 0.40
  assert rows[0]["beam_top1"]["f1"] == pytest.approx(0.38)
  table = capsys.readouterr().out
  assert "| work | `persoma_mlp-h50` | 0.300 | 0.380 | 0.400 (0.500 / 0.600; 0.550 / 0.300)" \
      " | 0.30 |" in table


def test_tabulates_sampled_marginals_beside_the_beam_ones(tmp_path, capsys):
  wd = tmp_path / "work"
  with_beams = _run(wd, "persoma_mlp-h50", 0.30, _beam(0.40))
  only_samples = _run(wd, "persoma_pool-h10", 0.25, None)
  for model, f1 in ((with_beams, 0.42), (only_samples, 0.35)):
    res = _beam(f1)
    res["sample_top1"] = res.pop("beam_top1")
    res["num_decodes"] = 64
    if model is with_beams:
      res["side_thresholds"] = {"liked": 0.3, "disliked": 0.15, "validation_f1": 0.45,
                                "f1": 0.43, "precision": 0.5, "recall": 0.6, "f1_liked": 0.56,
                                "f1_disliked": 0.32}
    (model / "best" / "eval_test_step2500_sample64.json").write_text(json.dumps(res))
  (only_samples / "best" / "eval_test_step2500_sample64_t1.5.json").write_text("{}")  # other T
  out = tmp_path / "s.json"
  assert marginal_decoding.main(["--work_dir", str(wd), "--decode_method", "sample",
                                 "--num_decodes", "64", "--out", str(out)]) == 0
  rows = json.loads(out.read_text())
  assert [r["marginals"]["f1"] for r in rows] == [0.42, 0.35]
  assert [r["beam16_marginals_f1"] for r in rows] == [0.40, None]
  assert rows[0]["decode_method"] == "sample" and rows[0]["sample_top1"]["f1"] == \
      pytest.approx(0.40)
  table = capsys.readouterr().out
  assert "| most likely sample F1 | marginals of 64 samples at T=1:" in table
  assert "| work | `persoma_mlp-h50` | 0.300 | 0.400 | 0.400 | 0.420 (0.500 / 0.600;" in table
  assert "| work | `persoma_pool-h10` | 0.250 | – | 0.330 | 0.350 (" in table
  assert "| work | `persoma_mlp-h50` | 0.420 | 0.430 (0.500 / 0.600; 0.560 / 0.320) | " \
      "0.30 / 0.15 |" in table.split("Separate cuts")[1]
  assert rows[0]["side_thresholds"]["f1"] == 0.43 and "side_thresholds" not in rows[1]
  assert marginal_decoding.main_eval.result_suffix("sample", 64, 1.5) == "_sample64_t1.5"


def test_errors_name_the_problem(tmp_path):
  with pytest.raises(SystemExit, match="runs does not exist"):
    marginal_decoding.main(["--work_dir", str(tmp_path / "nowhere")])
  (tmp_path / "runs").mkdir()
  with pytest.raises(SystemExit, match="no run with a best checkpoint"):
    marginal_decoding.main(["--work_dir", str(tmp_path), "--out", str(tmp_path / "m.json")])
  assert not (tmp_path / "m.json").exists()


def test_a_later_selection_adds_to_the_file_and_keeps_other_rows(tmp_path, capsys):
  one, two = tmp_path / "one", tmp_path / "two"
  _run(one, "persoma_mlp-h50", 0.30, _beam(0.40))
  _run(two, "persoma_pool-h10", 0.25, _beam(0.33))
  out = tmp_path / "m.json"
  assert marginal_decoding.main(["--work_dir", str(one), "--out", str(out)]) == 0
  assert marginal_decoding.main(["--work_dir", str(two), "--out", str(out)]) == 0
  rows = json.loads(out.read_text())
  assert [(r["work_dir"], r["run_id"]) for r in rows] == [("one", "persoma_mlp-h50"),
                                                          ("two", "persoma_pool-h10")]
  # the same run again replaces its row in place
  (one / "runs" / "persoma_mlp-h50" / "model" / "best" / "eval_test_step2600_beam16.json"
   ).write_text(json.dumps(dict(_beam(0.45), step=2600)))
  assert marginal_decoding.main(["--work_dir", str(one), "--out", str(out)]) == 0
  rows = json.loads(out.read_text())
  assert [(r["run_id"], r["marginals"]["f1"]) for r in rows] == [("persoma_mlp-h50", 0.45),
                                                                 ("persoma_pool-h10", 0.33)]
  assert "`persoma_pool-h10`" in capsys.readouterr().out.split("| work dir |")[-1]


def test_an_unreadable_out_file_is_refused_and_left_alone(tmp_path):
  wd = tmp_path / "work"
  _run(wd, "persoma_mlp-h50", 0.30, _beam(0.40))
  out = tmp_path / "m.json"
  out.write_text('{"not": "rows"}')
  with pytest.raises(SystemExit, match=f"--out {out}: holds a JSON dict, not a list"):
    marginal_decoding.main(["--work_dir", str(wd), "--out", str(out)])
  out.write_text("[{")
  with pytest.raises(SystemExit, match="not readable as JSON"):
    marginal_decoding.main(["--work_dir", str(wd), "--out", str(out)])
  assert out.read_text() == "[{"
