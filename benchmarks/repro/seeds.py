"""Seed spread of the history-size runs and of the best addition (group 9, a persoma addition).

Group 1 trains each embedding method once per history size N, with the program's seed. Group 9
trains the same configurations with `plan.SEED_OFFSETS` added to it (SEED and DATA_SEED: the
initialisation, the data order and the augmented train windows; the test users and their
recency-sampled histories are the same), and likewise the best persoma additions at N=50 and
N=100 (`plan.SEEDED_ADDITIONS`, runs of groups 7 and 8). This module collects the test F1 of every
seed per (method, N) or per run, their mean and sample standard deviation, and renders them.
Pure functions of the result dicts, used by the page and by the targets.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from repro import plan as plan_lib


def seed_of(r: Mapping[str, Any]) -> int:
  """The SEED a result was trained with (its bindings; unbound: the gin default, 0)."""
  return int(str((r.get("bindings") or {}).get("SEED", "0")))


def seed_f1s(results: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], dict[int, float]]:
  """(method, N) -> {seed: test F1} of the embedding methods' recency / uem / full runs of
  groups 1 and 9."""
  out: dict[tuple[str, int], dict[int, float]] = {}
  for r in results:
    if (r["kind"] == "train" and r["method"] in plan_lib.EMBEDDING_METHODS
        and {"history", "seeds"} & set(r["groups"])):
      out.setdefault((r["method"], r["history_size"]), {})[seed_of(r)] = float(r["f1"])
  return out


def added_seed_runs(results: Sequence[Mapping[str, Any]]
                    ) -> dict[str, dict[int, Mapping[str, Any]]]:
  """Program-seed run id -> {seed: result} of the runs of `plan.SEEDED_ADDITIONS` that group 9
  repeats (only configurations with a group-9 result)."""
  methods = {m for m, _, _ in plan_lib.SEEDED_ADDITIONS}
  repeated = {plan_lib.program_seed_id(r["run_id"]) for r in results
              if "seeds" in r["groups"] and r["method"] in methods}
  out: dict[str, dict[int, Mapping[str, Any]]] = {}
  for r in results:
    key = plan_lib.program_seed_id(r["run_id"])
    if r["kind"] == "train" and key in repeated:
      out.setdefault(key, {})[seed_of(r)] = r
  return out


def spread_text(by_seed: Mapping[int, Mapping[str, Any]], marginals: bool = False
                ) -> str | None:
  """'0.5100 ± 0.0100 over 3 seeds' of the test F1 (or of the marginals' F1, over the seeds
  that have them); None below two seeds."""
  f1s = [float(r["marginals"]["f1"] if marginals else r["f1"]) for r in by_seed.values()
         if not marginals or r.get("marginals")]
  if len(f1s) < 2:
    return None
  m, sd = mean_sd(f1s)
  return f"{m:.4f} ± {sd:.4f} over {len(f1s)} seeds"


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
  """Mean and sample standard deviation (None for a single value)."""
  m = sum(values) / len(values)
  if len(values) < 2:
    return m, None
  return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def seeds_planned() -> int:
  """Seeds per (method, N) when group 9 is complete: the program's and its offsets."""
  return 1 + len(plan_lib.SEED_OFFSETS)


def rises_on_mean(f1s: Mapping[tuple[str, int], Mapping[int, float]], method: str
                  ) -> str | None:
  """`met (N=5: 0.170 ± 0.008, ...)` / `missed (...)` judged on the mean over seeds, when every
  history size of `method` has all its seeds; None until then."""
  full = [(n, f1s.get((method, n), {})) for n in plan_lib.HISTORY_SIZES]
  if any(len(by_seed) < seeds_planned() for _, by_seed in full):
    return None
  stats = [(n, *mean_sd(list(by_seed.values()))) for n, by_seed in full]
  rising = all(b[1] > a[1] for a, b in zip(stats, stats[1:]))
  return (f"{'met' if rising else 'missed'} on the mean of {seeds_planned()} seeds ("
          + ", ".join(f"N={n}: {m:.3f} ± {sd:.3f}" for n, m, sd in stats) + ")")


def seeds_table(results: Sequence[Mapping[str, Any]]) -> list[str]:
  """The page's group-9 section body: F1 per seed, mean and SD per (method, N)."""
  f1s = seed_f1s(results)
  seeds = sorted({s for by_seed in f1s.values() for s in by_seed})
  if len(seeds) < 2:
    return ["No run of another seed has finished yet."]
  out = [f"Test F1 per seed; mean and sample SD over the seeds that finished (of "
         f"{seeds_planned()} planned). Seed {min(seeds)} is group 1's run.", "",
         "| Method | N | " + " | ".join(f"Seed {s}" for s in seeds) + " | Mean | SD |",
         "|---|---|" + "---|" * (len(seeds) + 2)]
  for (m, n) in sorted(f1s, key=lambda k: (plan_lib.method_order(k[0]), k[1])):
    by_seed = f1s[(m, n)]
    mean, sd = mean_sd(list(by_seed.values()))
    out.append(f"| {plan_lib.METHOD_LABELS.get(m, m)} | {n} | "
               + " | ".join(f"{by_seed[s]:.4f}" if s in by_seed else "–" for s in seeds)
               + f" | {mean:.4f} | {'–' if sd is None else f'{sd:.4f}'} |")
  return out


# Seeded additions that are there as PERSOMA-MLP's best family, not as the best addition.
MLP_FAMILY = ("persoma_mlp_rationale_tuned", "persoma_mlp_rationale_tuned_len",
              "persoma_mlp_rationale_tuned_probe", "persoma_mlp_rationale_tuned_probe_whole")


def added_seeds_table(results: Sequence[Mapping[str, Any]]) -> list[str]:
  """The seeded additions' runs per seed: greedy test F1 and thresholded-marginal F1."""
  runs = added_seed_runs(results)
  if not runs:
    return []
  seeds = sorted({s for by_seed in runs.values() for s in by_seed})
  first = {rid: next(iter(by_seed.values())) for rid, by_seed in runs.items()}
  size = {rid: r["history_size"] for rid, r in first.items()}
  sizes = " and ".join(f"N={n}" for n in sorted(set(size.values())))
  kinds = sorted({(r["method"], r.get("resample_labels") or "history") for r in first.values()},
                 key=lambda k: (plan_lib.method_order(k[0]), k))
  names = [f"{plan_lib.METHOD_LABELS.get(m, m)}, `{lab}` labels" for m, lab in kinds]
  names = " and ".join(filter(None, ("; ".join(names[:-1]), names[-1])))
  why = f"the best persoma addition at {sizes} with the program's seed, when group 9 planned it"
  if any(m in MLP_FAMILY for m, _ in kinds):
    why = ("where not PERSOMA-MLP's, " + why
           + "; PERSOMA-MLP's: its best family at N=50, on the tuned rule's labels")
  out = [f"{names} ({why}): test F1 with greedy decoding, and with thresholded marginals (in "
         "brackets), per seed.", "",
         "| Run (program seed) | N | " + " | ".join(f"Seed {s}" for s in seeds)
         + " | Mean ± SD | Marginals mean ± SD |", "|---|---|" + "---|" * (len(seeds) + 2)]
  for rid in sorted(runs, key=lambda k: (size[k], len(k), k)):
    by_seed = runs[rid]
    cells = []
    for s in seeds:
      r = by_seed.get(s)
      cells.append("–" if r is None else f"{r['f1']:.4f}" + (
          f" ({r['marginals']['f1']:.4f})" if r.get("marginals") else ""))
    out.append(f"| `{rid}` | {size[rid]} | " + " | ".join(cells)
               + f" | {spread_text(by_seed) or '–'} | "
               f"{spread_text(by_seed, marginals=True) or '–'} |")
  return out
