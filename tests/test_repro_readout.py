"""The rationale readout of reproduction runs (benchmarks/repro/readout.py, readout_table.py):
the persoma-eval commands, the record, reuse of result files, failures, `--add_readout` and the
page's table, with fake evaluations (no decoding)."""

from __future__ import annotations

import json
import sys

from repro_support import fake_tokens  # noqa: F401  (first: puts benchmarks/ on sys.path)
import reproduce
from repro import readout, readout_table
from repro import state as state_lib

FAKE_EVAL = r"""
import json, os, sys
model_dir, split, mode = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"00:00:01 I {split}: decoding, error: none")
if mode == "fail":
    sys.exit(2)
f1 = {"validation": 0.5, "test": 0.55}[split]
res = {"f1": f1, "precision": 0.6, "recall": 0.5, "f1_liked": 0.6, "f1_disliked": 0.4,
       "split": split, "step": int(mode), "users": 9, "readout": "rationale",
       "no_rationale": 1, "stated": {"f1": f1 - 0.02, "precision": 0.5, "recall": 0.5,
                                     "f1_liked": 0.5, "f1_disliked": 0.3}}
json.dump(res, open(os.path.join(model_dir, "best", f"eval_{split}_step{mode}_readout.json"),
                    "w"))
print(json.dumps(res))
"""


def test_readout_command_asks_persoma_eval_for_one_split_read_from_the_rationale(tmp_path):
  cmd = readout.readout_command(tmp_path, "validation")
  assert cmd[1:3] == ["-m", "persoma.train.main_eval"] and f"--checkpoint={tmp_path}" in cmd
  assert "--split=validation" in cmd and "--readout=rationale" in cmd and "--json" in cmd


def test_run_readout_records_reuses_and_never_breaks_a_finished_run(tmp_path, monkeypatch,
                                                                    plan):
  store = state_lib.Store(tmp_path)
  run = next(r for r in plan if r.run_id == "persoma_mlp_rationale-h5-recency-uem-full")
  echoed: list[str] = []
  assert readout.run_readout(run, store, 4, echo=echoed.append) is None
  assert "no best checkpoint" in echoed[-1]
  (store.model_dir(run.run_id) / "best").mkdir(parents=True)
  script = tmp_path / "fake_eval.py"
  script.write_text(FAKE_EVAL)
  mode = {"v": "fail"}
  calls: list[str] = []

  def fake_command(model_dir, split):
    calls.append(split)
    return [sys.executable, str(script), str(model_dir), split, mode["v"]]

  monkeypatch.setattr(readout, "readout_command", fake_command)
  assert readout.run_readout(run, store, 4, echo=echoed.append) is None
  assert "validation users failed (exit code 2)" in echoed[-1]
  mode["v"] = "3"  # scores another step than the result's best: not recorded
  assert readout.run_readout(run, store, 4, echo=echoed.append) is None
  assert "it scored step 3, not the result's best step 4" in echoed[-1]
  mode["v"] = "4"
  calls.clear()
  m = readout.run_readout(run, store, 4, echo=echoed.append)
  assert calls == ["validation", "test"]
  assert (m["f1"], m["stated"]["f1"], m["validation_f1"], m["validation_stated_f1"]) == (
      0.55, 0.53, 0.5, 0.48)
  assert m["step"] == 4 and m["no_rationale"] == 1 and m["users"] == 9 and m["wall_secs"] > 0
  assert "===== rationale readout" in store.log_path(run.run_id).read_text()
  again = readout.run_readout(run, store, 4, echo=echoed.append)  # its files are reused
  assert calls == ["validation", "test"] and again["f1"] == 0.55 and again["wall_secs"] is None
  # a file of another step is not taken: the split is scored again
  (store.model_dir(run.run_id) / "best" / "eval_test_step4_readout.json").write_text(
      json.dumps({"f1": 0.1, "step": 2, "readout": "rationale", "stated": {"f1": 0.1}}))
  assert readout.run_readout(run, store, 4)["f1"] == 0.55 and calls[-1] == "test"


def _result(run_id: str, val: float, val_stated: float) -> dict:
  return {"run_id": run_id, "kind": "train", "method": "persoma_mlp_rationale",
          "history_size": 50, "f1": 0.5,
          "readout": {"f1": 0.56, "precision": 0.6, "recall": 0.52, "f1_liked": 0.58,
                      "f1_disliked": 0.46, "no_rationale": 0, "step": 7,
                      "stated": {"f1": 0.53}, "validation_f1": val,
                      "validation_stated_f1": val_stated}}


def test_readout_section_shows_both_scores_and_what_validation_picks():
  assert readout_table.readout_section([{"run_id": "x", "kind": "train", "f1": 0.5}]) == []
  lines = readout_table.readout_section([_result("a", 0.54, 0.52), _result("b", 0.50, 0.51)])
  assert lines[0].startswith("## Labels read from the rationale")
  row_a = next(l for l in lines if l.startswith("| `a`"))
  row_b = next(l for l in lines if l.startswith("| `b`"))
  assert "| 0.5200 / 0.5400 | read | 0.5300 | 0.5600 |" in row_a
  assert "| 0.5100 / 0.5000 | stated |" in row_b
  assert readout_table.picks({"validation_f1": 0.5, "validation_stated_f1": 0.5}) == "read"


def test_add_readout_fills_finished_rationale_runs_and_the_page_shows_them(program_env, capsys,
                                                                           monkeypatch):
  base, calls, _, work, tmp = program_env
  rat, plain = "persoma_mlp_rationale-h5-recency-uem-full", "persoma_mlp-h5-recency-uem-full"
  assert reproduce.main(base + ["--only", f"{rat},{plain}"]) == 0
  for rid in (rat, plain):
    (work / "runs" / rid / "model" / "best").mkdir(parents=True)
  asked: list[str] = []

  def fake_readout(run, store, step, **_):
    asked.append(run.run_id)
    return _result(run.run_id, 0.54, 0.52)["readout"]

  monkeypatch.setattr(reproduce.readout, "run_readout", fake_readout)
  calls.clear()
  assert reproduce.main(base + ["--only", f"{rat},{plain}"]) == 0  # not asked: untouched
  assert asked == [] and "readout" not in json.loads(
      (work / "results" / f"{rat}.json").read_text())
  assert reproduce.main(base + ["--only", f"{rat},{plain}", "--add_readout"]) == 0
  assert calls == [] and asked == [rat]  # a run without rationale targets has none to read
  assert f"[{rat}] rationale readout: F1 0.5600 (stated labels 0.5300)" in (
      capsys.readouterr().out)
  assert json.loads((work / "results" / f"{rat}.json").read_text())["readout"]["f1"] == 0.56
  page = (tmp / "docs" / "RESULTS.md").read_text()
  assert "## Labels read from the rationale" in page and f"| `{rat}` | 5 | 0.5200 / 0.5400" in page
  assert reproduce.main(base + ["--only", rat, "--add_readout"]) == 0  # has it: nothing to do
  assert asked == [rat]


def test_a_finished_rationale_run_is_read_after_its_marginals(tmp_path, monkeypatch):
  """Program.execute: a run with rationale targets gets `readout` in its result; one
  without does not ask for it; a failed readout leaves the result as it was."""
  from repro import execute  # pylint: disable=g-import-not-at-top
  base = ["--dataset", "synthetic", "--work_dir", str(tmp_path / "work"), "--num_decodes", "0",
          "--num_samples", "0"]
  prog = reproduce.Program(reproduce.parse_args(base))
  monkeypatch.setattr(execute, "run_train", lambda run, store, fp, **_: {
      "run_id": run.run_id, "f1": 0.5, "best_step": 7})
  asked: list[tuple[str, int]] = []
  out = {"v": {"f1": 0.6}}

  def fake_readout(run, store, step, **_):
    asked.append((run.run_id, step))
    return out["v"]

  monkeypatch.setattr(reproduce.readout, "run_readout", fake_readout)
  rat = prog.by_id["persoma_mlp_rationale-h5-recency-uem-full"]
  assert prog.execute(rat)["readout"] == {"f1": 0.6}
  assert asked == [(rat.run_id, 7)]
  assert "readout" not in prog.execute(prog.by_id["persoma_mlp-h5-recency-uem-full"])
  assert len(asked) == 1
  out["v"] = None
  assert "readout" not in prog.execute(rat)
