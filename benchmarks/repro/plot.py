"""The F1-against-history-size plot of the results page (PNG, matplotlib imported on use)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from repro import plan as plan_lib
from repro import seeds
from repro.report import PAPER_F1

PLOT_NAME = "results_f1_vs_history.png"
# The best persoma addition, which runs at every N on its own labels (the rule tuned at that N):
# plotted too, dotted, at the program's step budget and seed.
BEST_ADDITION_LINE = ("persoma_genre_names_tuned_rank", "shown")


def plot_series(results: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, list]]:
  """`(label, line style, [(N, F1), ...])` per plotted method: group 1 (baselines dashed), then
  the group-8 adapters (dotted; runs with the program's labels) and `BEST_ADDITION_LINE`."""
  rows = [r for r in results if "history" in r["groups"] and r["kind"] != "cost"]
  added = [r for r in results if "pool" in r["groups"] and r["kind"] == "train"
           and r["method"] in plan_lib.POOL_METHODS
           and (r.get("resample_labels") or "history") == "history"]
  added += [r for r in results if _on_best_addition_line(r) and "seeds" not in r["groups"]]
  out = []
  for subset, style_of in ((rows, lambda m: "--" if m in plan_lib.BASELINES else "-"),
                           (added, lambda m: ":")):
    for m in sorted({r["method"] for r in subset}, key=plan_lib.method_order):
      pts = sorted((r["history_size"], r["f1"]) for r in subset if r["method"] == m)
      out.append((plan_lib.METHOD_LABELS.get(m, m), style_of(m), pts))
  return out


def _on_best_addition_line(r: Mapping[str, Any]) -> bool:
  """Whether `r` is a `BEST_ADDITION_LINE` run at the program's step budget (any seed)."""
  method, labels = BEST_ADDITION_LINE
  return (r["kind"] == "train" and r["method"] == method and r.get("resample_labels") == labels
          and not r.get("train_steps") and r.get("sampler", "recency") == "recency")


def seed_ranges(results: Sequence[Mapping[str, Any]]
                ) -> dict[str, list[tuple[int, float, float]]]:
  """Method label -> [(N, lowest F1, highest F1)] over the seeds of groups 1 and 9, at each N
  where more than one seed has finished; for `BEST_ADDITION_LINE`, over its plotted runs'
  seeds."""
  f1s = {key: list(by_seed.values()) for key, by_seed in seeds.seed_f1s(results).items()}
  for by_seed in seeds.added_seed_runs(results).values():  # the line's runs group 9 repeats
    runs = list(by_seed.values())
    if _on_best_addition_line(runs[0]):
      f1s[(runs[0]["method"], runs[0]["history_size"])] = [float(r["f1"]) for r in runs]
  out: dict[str, list[tuple[int, float, float]]] = {}
  for (m, n), values in sorted(f1s.items()):
    if len(values) > 1:
      out.setdefault(plan_lib.METHOD_LABELS.get(m, m), []).append((n, min(values), max(values)))
  return out


def plot(results: Sequence[Mapping[str, Any]], path: str, title: str = "") -> bool:
  """F1 against history size per method (`plot_series`), PNG at `path`; False if group 1 has
  nothing to plot."""
  if not any("history" in r["groups"] and r["kind"] != "cost" for r in results):
    return False
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(11, 4.8))
  ranges = seed_ranges(results)
  for label, style, pts in plot_series(results):
    (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                      marker="s" if style == ":" else "o", label=label)
    for n, lo, hi in ranges.get(label, []):  # the spread over seeds (group 9)
      ax.vlines(n, lo, hi, color=line.get_color(), alpha=0.45, linewidth=4)
  for (m, n, _, _), (v, _) in PAPER_F1.items():
    ax.plot([n], [v], marker="*", markersize=12, linestyle="none", color="black",
            label=f"{plan_lib.METHOD_LABELS.get(m, m)}, paper (PaLM 2)")
  ax.set_xscale("log")
  ax.set_xticks(list(plan_lib.HISTORY_SIZES))
  ax.set_xticklabels([str(n) for n in plan_lib.HISTORY_SIZES])
  ax.set_xlabel("history size N (recency sampling)")
  ax.set_ylabel("weighted F1 (test users)" + ("; bars: range over seeds" if ranges else ""))
  ax.set_title(title or "F1 against history size")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True
