"""Group 9 of the reproduction (benchmarks/repro/seeds.py): group 1's embedding runs with other
seeds, the per-seed table, and the "F1 rises with N" targets judged on the seed means."""

from __future__ import annotations

import math

import pytest

from repro_support import fake_results, fake_tokens, settings  # first: benchmarks/ on sys.path
from repro import plan as plan_lib
from repro import report
from repro import seeds
from repro import targets


def _seed_rows(method: str, f1s_by_seed: dict[int, tuple[float, ...]]) -> list[dict]:
  """Group-1 rows (seed 0) and group-9 rows (other seeds) of `method` over the four N."""
  rows = []
  for seed, f1s in f1s_by_seed.items():
    for n, f1 in zip(plan_lib.HISTORY_SIZES, f1s):
      rows.append({"run_id": f"{method}-{n}-s{seed}", "kind": "train", "method": method,
                   "label": plan_lib.METHOD_LABELS[method], "history_size": n,
                   "sampler": "recency", "fmt": "uem", "mode": "full", "f1": f1,
                   "precision": f1, "recall": f1, "users": 300,
                   "groups": ["history"] if seed == 0 else ["seeds"],
                   "bindings": {} if seed == 0 else {"SEED": str(seed),
                                                     "DATA_SEED": str(seed)}})
  return rows


def test_plan_repeats_group_1_embedding_runs_and_the_best_addition_per_seed_offset(plan):
  by_id = {r.run_id: r for r in plan}
  group9 = [r for r in plan if "seeds" in r.groups]
  methods = {m for m, _, _ in plan_lib.SEEDED_ADDITIONS}
  added = [r for r in group9 if r.method in methods]
  budgets = sum(len(f) for _, _, b in plan_lib.SEEDED_ADDITIONS for f in b.values())
  assert len(added) == len(plan_lib.SEED_OFFSETS) * budgets
  assert {r.history_size for r in added} == {
      n for _, _, b in plan_lib.SEEDED_ADDITIONS for n in b} == {5, 10, 50, 100}
  assert {(r.method, r.resample_labels) for r in added} == {
      (m, labels) for m, labels, _ in plan_lib.SEEDED_ADDITIONS}
  assert len(group9) - len(added) == (len(plan_lib.SEED_OFFSETS) * len(plan_lib.HISTORY_SIZES)
                                      * len(plan_lib.EMBEDDING_METHODS))
  for r in group9:
    seed = dict(r.bindings)["SEED"]
    assert r.run_id.endswith(f"-seed{seed}") and dict(r.bindings)["DATA_SEED"] == seed
    twin = by_id[plan_lib.program_seed_id(r.run_id)]  # the program-seed run of the config
    assert ({50: "steps"}.get(r.history_size, "pool") if r in added else "history") \
        in twin.groups
    assert "SEED" not in dict(twin.bindings) and r.train_steps == twin.train_steps
    if r.warm_from:  # a longer run continues the shorter run of its own seed
      assert r.warm_from == twin.warm_from + f"-seed{seed}" and r.warm_from in by_id
    assert ({k: v for k, v in r.bindings if k not in ("SEED", "DATA_SEED")}
            == dict(twin.bindings))
    assert r.gin_file == twin.gin_file and r.fingerprint() != twin.fingerprint()
  assert sum(bool(r.warm_from) for r in added) == len(plan_lib.SEED_OFFSETS) * (
      budgets - sum(len(b) for _, _, b in plan_lib.SEEDED_ADDITIONS))
  assert {dict(r.bindings)["SEED"] for r in group9} == set(plan_lib.SEED_OFFSETS)
  # a program run with --seed 3 keeps its own seed in group 1 and offsets it in group 9
  shifted = plan_lib.build_plan(settings(seed=3), fake_tokens)
  assert {dict(r.bindings)["SEED"] for r in shifted if "seeds" in r.groups} == {4, 5}
  # ... and in group 10, which continues a group-9 run
  offset = [r for r in plan if set(r.groups) & {"seeds", "continued"}]
  assert {r.run_id for r in shifted} == {r.run_id for r in plan} - {
      r.run_id for r in offset} | {r.run_id.replace("-seed1", "-seed4").replace("-seed2",
                                                                               "-seed5")
                                   for r in offset}


def test_program_seed_id_drops_only_train_ids_seed_suffix():
  rid = plan_lib.train_id("persoma_mlp", 50, "recency", "uem", steps_factor=3)
  assert plan_lib.program_seed_id(plan_lib.train_id("persoma_mlp", 50, "recency", "uem",
                                                    steps_factor=3, seed=12)) == rid
  assert plan_lib.program_seed_id(rid) == rid
  assert plan_lib.program_seed_id("rule-h50-recency") == "rule-h50-recency"
  assert plan_lib.program_seed_id("x-seedy") == "x-seedy"


def test_seed_of_reads_the_bindings_and_defaults_to_zero():
  assert seeds.seed_of({"bindings": {"SEED": "2", "FORMAT": "'uem'"}}) == 2
  assert seeds.seed_of({"bindings": {"FORMAT": "'uem'"}}) == 0
  assert seeds.seed_of({}) == 0  # results recovered from an old page carry no bindings


def test_mean_and_sample_sd():
  m, sd = seeds.mean_sd([0.1, 0.2, 0.3])
  assert m == pytest.approx(0.2) and sd == pytest.approx(0.1)
  assert seeds.mean_sd([0.4]) == (0.4, None)


def test_rises_on_mean_needs_every_seed_and_judges_the_means():
  # seed 0 dips from N=5 to N=10; the mean over three seeds does not
  rows = _seed_rows("persoma_transformer", {0: (0.18, 0.17, 0.31, 0.37),
                                            1: (0.16, 0.19, 0.30, 0.38),
                                            2: (0.17, 0.20, 0.32, 0.36)})
  f1s = seeds.seed_f1s(rows)
  assert f1s[("persoma_transformer", 10)] == {0: 0.17, 1: 0.19, 2: 0.20}
  verdict = seeds.rises_on_mean(f1s, "persoma_transformer")
  assert verdict.startswith("met on the mean of 3 seeds (N=5: 0.170 ± 0.010, N=10: 0.187 ± ")
  lines = "\n".join(targets.check_targets(fake_results() + rows))
  assert ("F1 rises with N for PERSOMA-Transformer: missed (N=5: 0.180, N=10: 0.170, N=50: "
          "0.310, N=100: 0.370); met on the mean of 3 seeds") in lines
  # one seed short at one N: no verdict on the mean yet
  partial = [r for r in rows if r["run_id"] != "persoma_transformer-100-s2"]
  assert seeds.rises_on_mean(seeds.seed_f1s(partial), "persoma_transformer") is None
  assert "mean of" not in "\n".join(targets.check_targets(fake_results() + partial))
  # and the means can miss where seed 0 rises
  falls = _seed_rows("uem", {0: (0.1, 0.2, 0.3, 0.4), 1: (0.1, 0.2, 0.3, 0.1),
                             2: (0.1, 0.2, 0.3, 0.2)})
  assert seeds.rises_on_mean(seeds.seed_f1s(falls), "uem").startswith(
      "missed on the mean of 3 seeds")


def test_a_seed_run_is_never_the_best_variant_of_the_n50_target():
  rows = _seed_rows("persoma_mlp", {1: (0.2, 0.3, 0.9, 0.95)})
  lines = "\n".join(targets.check_targets(fake_results() + rows))
  assert "N=50 reaches F1 >= 0.57: met (F1 0.5800; paper" in lines
  assert "best variant" not in lines


def test_page_shows_each_seed_mean_and_sd(tmp_path):
  rows = _seed_rows("persoma_perceiver", {0: (0.16, 0.18, 0.25, 0.24),
                                          1: (0.17, 0.19, 0.26, 0.27)})
  md = report.render(fake_results() + rows, meta={"planned": 99}, missing=[], plot_file=None)
  section = md.split(f"## {plan_lib.GROUPS['seeds']}")[1].split("\n## ")[0]
  assert "| Method | N | Seed 0 | Seed 1 | Mean | SD |" in section
  assert (f"| PERSOMA-Perceiver | 100 | 0.2400 | 0.2700 | 0.2550 | "
          f"{math.sqrt(2 * 0.015 ** 2):.4f} |") in section
  # methods with one seed only are listed with an empty seed cell and no SD
  assert "| PERSOMA-MLP | 50 | 0.5800 | – | 0.5800 | – |" in section
  md0 = report.render(fake_results(), meta={"planned": 99}, missing=[], plot_file=None)
  assert "No run of another seed has finished yet." in md0


def test_plot_draws_the_seed_range_where_seeds_finished(tmp_path):
  from repro import plot  # pylint: disable=g-import-not-at-top
  rows = _seed_rows("persoma_transformer", {0: (0.18, 0.17, 0.31, 0.37),
                                            1: (0.16, 0.19, 0.30, 0.38)})
  rows = [r for r in rows if r["run_id"] != "persoma_transformer-100-s1"]
  ranges = plot.seed_ranges(fake_results() + rows)
  assert ranges == {"PERSOMA-Transformer": [(5, 0.16, 0.18), (10, 0.17, 0.19),
                                            (50, 0.30, 0.31)]}
  assert plot.plot(fake_results() + rows, str(tmp_path / "p.png"))
  assert (tmp_path / "p.png").stat().st_size > 10_000
  md = report.render(fake_results() + rows, meta={"planned": 99}, missing=[],
                     plot_file="p.png")
  assert "vertical bars: lowest to highest test F1 over the seeds" in md
  assert "vertical bars" not in report.render(fake_results(), meta={"planned": 99},
                                              missing=[], plot_file="p.png")


def _added_row(run_id: str, seed: int, f1: float, marginals: float | None, n: int = 50,
               method: str = plan_lib.BEST_ADDED) -> dict:
  """A result of `method` (a seeded addition) at N=n (for the program's seed group 7 at N=50,
  group 8 at other N; group 9 otherwise)."""
  return {"run_id": run_id + (f"-seed{seed}" if seed else ""), "kind": "train",
          "method": method, "label": plan_lib.METHOD_LABELS[method],
          "history_size": n, "sampler": "recency", "fmt": "uem", "mode": "full",
          "resample_labels": plan_lib.BEST_ADDED_LABELS, "f1": f1, "precision": f1,
          "recall": f1, "users": 300,
          "groups": ["seeds"] if seed else ["steps" if n == 50 else "pool"],
          "bindings": {"SEED": str(seed), "DATA_SEED": str(seed)} if seed else {},
          **({"marginals": {"f1": marginals, "precision": marginals, "recall": marginals,
                            "threshold": 0.3, "num_decodes": 64, "decode_method": "sample"}}
             if marginals is not None else {})}


def test_plot_draws_the_best_addition_lines_seed_range_at_its_plotted_budget():
  from repro import plot  # pylint: disable=g-import-not-at-top
  method, labels = plot.BEST_ADDITION_LINE
  rows = []
  for n, f1s in ((5, (0.24, 0.25, 0.26)), (50, (0.57, 0.55, 0.56))):
    rid = f"{method}-h{n}-recency-uem-full-relabel_{labels}"
    rows += [dict(_added_row(rid, s, f, None, n=n, method=method), resample_labels=labels)
             for s, f in enumerate(f1s)]
    # its longer runs are not on the line, so their seeds draw no bar
    rows += [dict(_added_row(rid + "-steps_x3", s, f + 0.1, None, n=n, method=method),
                  resample_labels=labels, train_steps=7500) for s, f in enumerate(f1s)]
  line = plan_lib.METHOD_LABELS[method]
  assert [p for lab, _, p in plot.plot_series(fake_results() + rows) if lab == line] == [
      [(5, 0.24), (50, 0.57)]]
  assert plot.seed_ranges(fake_results() + rows)[line] == [(5, 0.24, 0.26), (50, 0.55, 0.57)]
  one_seed = [r for r in rows if not r["run_id"].endswith(("-seed1", "-seed2"))]
  assert line not in plot.seed_ranges(fake_results() + one_seed)


def test_best_addition_is_picked_on_the_program_seed_and_reported_with_its_seed_mean():
  rid = "persoma_genre_names_rationale-h50-x3"
  rows = [_added_row(rid, 0, 0.52, 0.53), _added_row(rid, 1, 0.60, 0.61),
          _added_row(rid, 2, 0.47, None)]  # seed 2's marginals have not run yet
  lines = "\n".join(targets.check_targets(fake_results() + rows))
  mean, sd = seeds.mean_sd([0.52, 0.60, 0.47])
  assert (f"best persoma-addition adapter (groups 7-8): F1 0.5200 ({mean:.4f} ± {sd:.4f} over "
          f"3 seeds), `{rid}`") in lines
  m_mean, m_sd = seeds.mean_sd([0.53, 0.61])
  assert (f"best with thresholded marginals: F1 0.5300 ({m_mean:.4f} ± {m_sd:.4f} over 2 "
          f"seeds) over 64 samples, `{rid}`") in lines
  assert "0.6000" not in lines and "-seed1" not in lines
  # without other seeds: no spread, and no table on the page
  alone = "\n".join(targets.check_targets(fake_results() + rows[:1]))
  assert f"F1 0.5200, `{rid}`" in alone and "seeds)" not in alone
  assert seeds.added_seeds_table(fake_results() + rows[:1]) == []
  md = report.render(fake_results() + rows, meta={"planned": 99}, missing=[], plot_file=None)
  section = md.split(f"## {plan_lib.GROUPS['seeds']}")[1].split("\n## ")[0]
  assert ("| Run (program seed) | N | Seed 0 | Seed 1 | Seed 2 | Mean ± SD "
          "| Marginals mean ± SD |") in section
  assert (f"| `{rid}` | 50 | 0.5200 (0.5300) | 0.6000 (0.6100) | 0.4700 | {mean:.4f} ± {sd:.4f} "
          f"over 3 seeds | {m_mean:.4f} ± {m_sd:.4f} over 2 seeds |") in section


def test_best_addition_at_every_n_is_set_against_the_rule_with_its_seed_mean():
  rules = {r["history_size"]: r["f1"] for r in fake_results()
           if r["method"] == "rule" and "history" in r["groups"]}
  r10, r50 = "persoma_genre_names_rationale-h10", "persoma_genre_names_rationale-h50-x3"
  r100 = "persoma_genre_names_rationale-h100-x3"
  rows = [_added_row(r10, 0, 0.31, None, n=10), _added_row(r50, 0, 0.52, None),
          _added_row(r100, 0, 0.69, 0.70, n=100), _added_row(r100, 1, 0.71, 0.72, n=100),
          _added_row(r100, 2, 0.68, None, n=100)]
  line = next(t for t in targets.check_targets(fake_results() + rows)
              if t.startswith("- PERSOMA-MLP beats the rule baseline"))
  mean, sd = seeds.mean_sd([0.69, 0.71, 0.68])
  assert (f"best persoma-addition adapter (groups 7-8), N=10: 0.3100 vs {rules[10]:.4f}, "
          f"`{r10}`; N=50: 0.5200 vs {rules[50]:.4f}, `{r50}`; N=100: 0.6900 ({mean:.4f} ± "
          f"{sd:.4f} over 3 seeds) vs {rules[100]:.4f}, `{r100}`") in line
  assert line.split("groups 7-8), ")[1].startswith("N=10: ")  # no addition ran at N=5
  assert "0.7100" not in line  # a seed run is never the best one
  section = seeds.added_seeds_table(fake_results() + rows)
  assert "the best persoma addition at N=100 with the program's seed" in section[0]
  assert section[-1].startswith(f"| `{r100}` | 100 | 0.6900 (0.7000) | 0.7100 (0.7200) | 0.6800 |")


def test_each_seeded_addition_gets_its_row_and_the_best_one_its_seed_mean():
  (m1, lab1, _), (m2, lab2, _) = plan_lib.SEEDED_ADDITIONS[:2]
  r1, r2 = f"{m1}-h50-x3", f"{m2}-h50-x3"
  rows = [_added_row(r1, 0, 0.52, None), _added_row(r1, 1, 0.53, None),
          _added_row(r2, 0, 0.54, None, method=m2), _added_row(r2, 1, 0.50, None, method=m2)]
  assert set(seeds.added_seed_runs(fake_results() + rows)) == {r1, r2}
  section = seeds.added_seeds_table(fake_results() + rows)
  assert (f"{plan_lib.METHOD_LABELS[m1]}, `{lab1}` labels and {plan_lib.METHOD_LABELS[m2]}, "
          f"`{lab2}` labels (the best persoma addition at N=50") in section[0]
  assert any(line.startswith(f"| `{r1}` | 50 | 0.5200 | 0.5300 |") for line in section)
  assert "PERSOMA-MLP's" not in section[0]
  mlp = "persoma_mlp_rationale_tuned-h50"
  section = seeds.added_seeds_table(fake_results() + rows + [
      _added_row(mlp, 0, 0.48, None, method="persoma_mlp_rationale_tuned"),
      _added_row(mlp, 1, 0.47, None, method="persoma_mlp_rationale_tuned")])
  assert ("(where not PERSOMA-MLP's, the best persoma addition at N=50 with the program's "
          "seed, when group 9 planned it; PERSOMA-MLP's: its best family at N=50") in section[0]
  assert any(line.startswith(f"| `{mlp}` | 50 | 0.4800 | 0.4700 |") for line in section)
  assert any(line.startswith(f"| `{r2}` | 50 | 0.5400 | 0.5000 |") for line in section)
  line = next(t for t in targets.check_targets(fake_results() + rows)
              if t.startswith("- PERSOMA-MLP beats the rule baseline"))
  mean, sd = seeds.mean_sd([0.54, 0.50])
  assert f"N=50: 0.5400 ({mean:.4f} ± {sd:.4f} over 2 seeds) vs " in line and f"`{r2}`" in line
