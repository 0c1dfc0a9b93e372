"""The page's table of the rationale readout (a persoma addition) against the stated labels.

A train run with rationale targets is scored once more, its labels read from the rationale it
writes (`repro.readout.run_readout`), and keeps that in its result under `readout`. Pure
functions of the result dicts.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from repro.marginals_table import fmt, run_rows


def picks(readout: Mapping[str, Any]) -> str:
  """Which labels the validation users favour: 'read' (ties too: the readout is the rule the
  run was trained to follow) or 'stated'."""
  return "read" if readout["validation_f1"] >= readout["validation_stated_f1"] else "stated"


def readout_section(results: Sequence[Mapping[str, Any]]) -> list[str]:
  """The stated labels against the labels read from the rationale, for the runs with both."""
  rows = run_rows(results, "readout")
  if not rows:
    return []
  L = ["## Labels read from the rationale (a persoma addition)", "",
       "A run with rationale targets writes the label rule's working (each qualifying "
       "genre's mean rating over the items shown, `Shown: Action 3.75, ...`) before its "
       "labels. Here its best checkpoint's greedy decodes are scored twice: by the labels "
       "they state, and by the run's own label rule applied to the means they wrote "
       "(`persoma-eval --readout rationale`, `persoma.metrics.readout`; a decode with no "
       "rationale keeps its stated labels), on the validation users and then the test "
       "users. Picks: the one the validation users favour. The program does this after "
       "every run with rationale targets (`--add_readout` adds it to finished runs whose "
       "checkpoints survive). Same checkpoint, same test users as the tables above.", "",
       "| Run id | N | Validation F1 stated / read | Picks | Test F1 stated | Test F1 read | "
       "Precision | Recall | F1 liked / disliked | No rationale |",
       "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    m = r["readout"]
    L.append(f"| `{r['run_id']}` | {r['history_size']} | {fmt(m['validation_stated_f1'])} / "
             f"{fmt(m['validation_f1'])} | {picks(m)} | {fmt(m['stated']['f1'])} | "
             f"{fmt(m['f1'])} | {fmt(m['precision'])} | {fmt(m['recall'])} | "
             f"{fmt(m.get('f1_liked'))} / {fmt(m.get('f1_disliked'))} | "
             f"{m.get('no_rationale', '–')} |")
  return L + [""]
