"""The page's table of thresholded label marginals (a persoma addition) against greedy decoding.

After a train run the program scores its best checkpoint once more, with label marginals over K
beams, or K samples for runs with rationale targets (`execute.run_marginals`), and keeps them in
the run's result under `marginals`. Pure functions of the result dicts.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from repro import plan as plan_lib


def fmt(x: Any, nd: int = 4) -> str:
  """A figure to `nd` decimals; – for a missing one (the format of every table of the page)."""
  return "–" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def run_rows(results: Sequence[Mapping[str, Any]], key: str) -> list[Mapping[str, Any]]:
  """The train results holding `key` (e.g. 'marginals'), in the page's method order, then by N
  and run id."""
  rows = [r for r in results if r.get("kind") == "train" and r.get(key)]
  return sorted(rows, key=lambda r: (plan_lib.method_order(r["method"]), r["history_size"],
                                     r["run_id"]))


def marginals_section(results: Sequence[Mapping[str, Any]]) -> list[str]:
  """Greedy decoding against thresholded beam or sample marginals, for the runs with both."""
  rows = run_rows(results, "marginals")
  if not rows:
    return []
  beams = sorted({r["marginals"]["num_decodes"] for r in rows
                  if r["marginals"].get("decode_method", "beam") == "beam"})
  L = ["## Thresholded marginals (a persoma addition)", "",
       "Greedy decoding writes the single most likely answer. Here the best checkpoint of "
       f"each run also decodes {'/'.join(map(str, beams)) or 'K'} beams per user (no length "
       "penalty, so beam scores are sequence log-probabilities); each of the 38 classes gets "
       "the renormalised probability mass of the beams naming it, and is predicted when that "
       "reaches a cut tuned on the validation users and applied once to the test users "
       "(`persoma-eval --num_decodes K`, `persoma.metrics.marginals`). Runs with rationale "
       "targets decode temperature-1 samples instead where the Decodes column says so "
       "(`--decode_method sample`), and a class's marginal is the fraction of samples naming "
       "it: their beams mostly differ in the rationale's numbers, not in the labels. The "
       "program does this after every train run (`--num_decodes`, default 16 beams; "
       "`--num_samples`, default 64 samples; `--add_marginals` adds it to finished runs whose "
       "checkpoints survive). "
       "Same checkpoint, same test users as the tables above. Top decode: the best beam "
       "alone, or the most likely sample.", "",
       "| Run id | N | Decodes | Greedy F1 | Top decode F1 | Marginals F1 | Precision | "
       "Recall | F1 liked / disliked | Cut (validation F1) |",
       "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    m = r["marginals"]
    method = m.get("decode_method", "beam")
    top1 = m.get(f"{method}_top1") or {}
    L.append(f"| `{r['run_id']}` | {r['history_size']} | {m['num_decodes']} "
             f"{plan_lib.DECODES_NOUN[method]} | {fmt(r['f1'])} | "
             f"{fmt(top1.get('f1'))} | {fmt(m['f1'])} | {fmt(m['precision'])} | "
             f"{fmt(m['recall'])} | {fmt(m.get('f1_liked'))} / {fmt(m.get('f1_disliked'))} "
             f"| {m['threshold']:.2f} ({fmt(m.get('validation_f1'))}) |")
  return L + [""]
