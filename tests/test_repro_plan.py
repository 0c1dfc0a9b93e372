"""The reproduction plan (benchmarks/repro/plan.py, spec.py): run ids, groups, bindings,
fingerprints and gin files of every planned run, on synthetic settings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from repro_support import REPO, fake_tokens, settings  # first: puts benchmarks/ on sys.path
import reproduce
from repro import plan as plan_lib


def test_plan_ids_unique_and_groups_merged(plan):
  ids = [r.run_id for r in plan]
  assert len(ids) == len(set(ids))
  by_id = {r.run_id: r for r in plan}
  shared = by_id["persoma_mlp-h50-recency-uem-full"]
  assert set(shared.groups) == {"history", "samplers", "modes", "labels", "steps", "pool"}
  assert set(by_id["persoma_mlp-h10-recency-uem-full"].groups) == {"history", "formats", "pool"}
  # group 8: the pool adapter (mean and ratio pooling) and the genre-statistics adapter (with
  # and without genre-name anchors) at every N, + shown labels at N=50 (and at every N for the
  # genre-name anchors, which also get window labels at N=50), beside the same MLP runs; the
  # MLP with item heads (with and without rationale targets) like the pool adapter; the
  # genre-name anchors with rationale targets and shown labels at N=50 and 100; the MLP with
  # rationale targets also with shown labels at N=100; the rank features at N=5, 10, 100
  pool = [r for r in plan if "pool" in r.groups]
  methods = ("persoma_pool", "persoma_pool_ratio", "persoma_genre_stats", "persoma_genre_names",
             "persoma_mlp_items", "persoma_mlp_rationale", "persoma_mlp")
  assert {(r.method, r.history_size, r.resample_labels) for r in pool} == {
      (m, n, "history") for m in methods for n in (5, 10, 50, 100)} | {
      (m, 50, "shown") for m in ("persoma_pool", "persoma_mlp", "persoma_mlp_items",
                                 "persoma_mlp_rationale")} | {
      ("persoma_genre_names", n, "shown") for n in (5, 10, 50, 100)} | {
      ("persoma_genre_names", 50, "window")} | {
      ("persoma_genre_names_rationale", n, "shown") for n in (50, 100)} | {
      ("persoma_mlp_rationale", 100, "shown")} | {
      ("persoma_genre_names_tuned_rank", n, "shown") for n in (5, 10, 100)}
  base_steps = int(plan_lib.gin_default("TRAIN_STEPS"))
  for method in ("persoma_genre_names_rationale", "persoma_mlp_rationale"):
    by_n = {(r.history_size, r.train_steps): r for r in pool
            if r.method == method and r.resample_labels == "shown"}
    longest = {(100, 6 * base_steps)} if method == "persoma_mlp_rationale" else set()
    assert set(by_n) == {(50, None), (100, None), (100, 3 * base_steps)} | longest, method
    assert all(dict(by_n[k].bindings)["TARGETS_LENGTH"] == 160 for k in by_n if k[0] == 100)
    assert "TARGETS_LENGTH" not in dict(by_n[50, None].bindings)  # the gin file's 128
    assert set(by_n[50, None].groups) == {"steps", "pool"}
    # at N=100 also for 3x the steps, in group 8, continuing the shorter run
    longer = by_n[100, 3 * base_steps]
    assert longer.groups == ("pool",) and longer.warm_from == by_n[100, None].run_id
    assert dict(longer.bindings)["TRAIN_STEPS"] == 3 * base_steps
    for k in longest:  # and the MLP's for 6x, continuing the 3x run
      assert by_n[k].warm_from == longer.run_id and by_n[k].groups == ("pool",)
  assert all(r.gin_file == f"gin/experiments/{r.method}.gin" for r in pool
             if r.method != "persoma_mlp")
  # group contents
  hist = [r for r in plan if "history" in r.groups]
  assert {(r.method, r.history_size) for r in hist if r.kind == "baseline"} == {
      (m, n) for m in ("counting", "rule", "rule_tuned", "all") for n in (5, 10, 50, 100)}
  assert {r.history_size for r in hist if r.method == "textprompt"} == {5, 10, 50}
  for m in plan_lib.EMBEDDING_METHODS:
    assert {r.history_size for r in hist if r.method == m} == {5, 10, 50, 100}
  samp = [r for r in plan if "samplers" in r.groups]
  assert {(r.method, r.sampler) for r in samp} == {
      (m, s) for m in ("persoma_mlp", "counting", "rule", "rule_tuned", "all")
      for s in plan_lib.SAMPLERS}
  fmts = [r for r in plan if "formats" in r.groups]
  assert {(r.method, r.fmt) for r in fmts} == {
      (m, f) for m in ("persoma_mlp", "textprompt") for f in plan_lib.FORMATS}
  cost = [r for r in plan if r.kind == "cost"]
  assert {(r.method, r.history_size) for r in cost if r.fmt == "uem"} == {
      (m, n) for m in plan_lib.COST_METHODS for n in plan_lib.HISTORY_SIZES}
  fmt_cost = {(r.method, r.fmt): r for r in cost if r.fmt != "uem"}  # the N=10 target's formats
  assert set(fmt_cost) == {(m, f) for m in ("textprompt", "persoma_mlp")
                           for f in plan_lib.FORMATS[1:]}
  assert all(r.history_size == plan_lib.BASE_N and dict(r.bindings)["FORMAT"] == r.fmt
             for r in fmt_cost.values())
  assert "FORMAT" not in dict(next(r for r in cost if r.fmt == "uem").bindings)  # ids unchanged
  labels = [r for r in plan if "labels" in r.groups and r.kind == "train"]
  assert {(r.method, r.history_size, r.resample_labels, r.train_resamples) for r in labels} == {
      ("persoma_mlp", 50, x, None) for x in plan_lib.RESAMPLE_LABELS} | {
      ("persoma_mlp", 50, "window", plan_lib.LABELS_MORE_RESAMPLES)}


def test_relabel_runs_bind_the_data_config_and_keep_the_default_run_unchanged(plan):
  by_id = {r.run_id: r for r in plan}
  default = by_id["persoma_mlp-h50-recency-uem-full"]
  window = by_id["persoma_mlp-h50-recency-uem-full-relabel_window"]
  assert plan_lib.RESAMPLE_LABELS_BINDING not in dict(default.bindings)
  assert dict(window.bindings)[plan_lib.RESAMPLE_LABELS_BINDING] == "window"
  assert (f"--gin.{plan_lib.RESAMPLE_LABELS_BINDING}='window'" in window.gin_args())
  assert window.fingerprint() != default.fingerprint()
  more = by_id[f"persoma_mlp-h50-recency-uem-full-relabel_window-k{plan_lib.LABELS_MORE_RESAMPLES}"]
  assert dict(more.bindings)["TRAIN_RESAMPLES"] == plan_lib.LABELS_MORE_RESAMPLES
  assert "TRAIN_RESAMPLES" not in dict(window.bindings)
  from persoma.data import examples
  assert plan_lib.RESAMPLE_LABELS == examples.RESAMPLE_LABELS


def test_plan_ids_are_stable_across_settings():
  a = [r.run_id for r in plan_lib.build_plan(settings(), fake_tokens)]
  b = [r.run_id for r in plan_lib.build_plan(settings(train_steps=7, model_size="tiny"),
                                             fake_tokens)]
  assert a == b


def test_text_prompt_fit_and_inputs_length(plan):
  by_id = {r.run_id: r for r in plan}
  r10 = by_id["textprompt-h10-recency-uem-full"]
  assert r10.skip_reason is None
  length = dict(r10.bindings)["INPUTS_LENGTH"]
  assert length % 64 == 0 and length >= fake_tokens(10, "uem") and length - 64 < fake_tokens(
      10, "uem")
  r50 = by_id["textprompt-h50-recency-uem-full"]
  assert r50.skip_reason and str(fake_tokens(50, "uem")) in r50.skip_reason
  # a larger limit makes it fit
  big = {r.run_id: r for r in plan_lib.build_plan(settings(max_inputs_length=8192),
                                                  fake_tokens)}
  assert big["textprompt-h50-recency-uem-full"].skip_reason is None
  # embedding methods: INPUTS_LENGTH covers the measured instruction (multiple of 8)
  assert "INPUTS_LENGTH" not in dict(by_id["persoma_mlp-h10-recency-uem-full"].bindings)
  with_instr = {r.run_id: r for r in plan_lib.build_plan(settings(), fake_tokens, 34)}
  assert dict(with_instr["persoma_mlp-h10-recency-uem-full"].bindings)["INPUTS_LENGTH"] == 40
  assert dict(with_instr["cost-persoma_perceiver-h50"].bindings)["INPUTS_LENGTH"] == 40
  assert dict(with_instr["textprompt-h10-recency-uem-full"].bindings)["INPUTS_LENGTH"] == length


def test_modes_group_uses_task_adapted_base(plan):
  modes = [r for r in plan if "modes" in r.groups]
  base = plan_lib.base_run_id()
  assert plan[0].run_id == base  # bases run first
  dependants = [r for r in modes if r.init_from]
  assert {r.mode for r in dependants} == {"full", "lora", "frozen"}
  assert all(r.init_from == base and r.history_size == 50 for r in dependants)
  lora = next(r for r in dependants if r.mode == "lora")
  assert dict(lora.bindings)["LORA_RANK"] == 4 and dict(lora.bindings)["TRAINING_MODE"] == "lora"
  assert dict(next(r for r in dependants if r.mode == "frozen").bindings)["LORA_RANK"] == 0
  # the base is text prompting in BASE_FMT, and a dependant's id names the base's N and format
  assert plan[0].method == "textprompt" and plan[0].fmt == plan_lib.BASE_FMT == "title_score"
  assert all(r.run_id.endswith("-on-textprompt_h10_title_score") for r in dependants)
  assert plan_lib.train_id("persoma_mlp", 50, "recency", "uem", "frozen",
                           init_from="textprompt-h5-recency-uem-full") == (
                               "persoma_mlp-h50-recency-uem-frozen-on-textprompt_h5")


def test_gin_args_and_overrides():
  s = settings(train_steps=5, model_size="tiny", encoder="hashing", data_dir="/data/ml")
  run = next(r for r in plan_lib.build_plan(s, fake_tokens)
             if r.run_id == "persoma_perceiver-h5-recency-uem-full")
  args = run.gin_args()
  assert args[0] == "--gin_file=gin/experiments/persoma_perceiver.gin"
  assert "--gin.TRAIN_STEPS=5" in args and "--gin.MODEL_SIZE='tiny'" in args
  assert "--gin.ENCODER='hashing'" in args and "--gin.DATASET='synthetic'" in args
  assert "--gin.HISTORY_SIZE=5" in args and "--gin.DATA_DIR='/data/ml'" in args
  cmd = reproduce.execute.train_command(run, Path("/w/runs/x/model"), "/w/base/checkpoint_3")
  assert cmd[-1] == "--gin.MODEL_DIR='/w/runs/x/model'"
  assert "--gin.INITIAL_CHECKPOINT_PATH='/w/base/checkpoint_3'" in cmd
  for f in plan_lib.GIN_FILES.values():
    assert (plan_lib.GIN_DIR / f).exists(), f


def test_fingerprints():
  p1 = {r.run_id: r for r in plan_lib.build_plan(settings(data_dir="/a"), fake_tokens)}
  p2 = {r.run_id: r for r in plan_lib.build_plan(settings(data_dir="/b"), fake_tokens)}
  p3 = {r.run_id: r for r in plan_lib.build_plan(settings(train_steps=9), fake_tokens)}
  rid = "persoma_mlp-h50-recency-uem-full"
  assert p1[rid].fingerprint() == p2[rid].fingerprint()  # data location is not identity
  p4 = {r.run_id: r for r in plan_lib.build_plan(settings(data_dir="/a", save_every=25),
                                                  fake_tokens)}
  assert "--gin.SAVE_EVERY_STEPS=25" in p4[rid].gin_args()
  assert p4[rid].fingerprint() == p1[rid].fingerprint()  # nor how often a run saves
  assert p1[rid].fingerprint() != p3[rid].fingerprint()
  dep = "persoma_mlp-h50-recency-uem-lora4-on-textprompt_h10_title_score"
  assert p1[dep].fingerprint("aaa") != p1[dep].fingerprint("bbb")


def test_select(plan):
  assert {r.kind for r in plan_lib.select(plan, ["cost"])} == {"cost"}
  got = {r.run_id for r in plan_lib.select(plan, ["persoma_mlp-h50-recency-uem-frozen-on-*"])}
  assert got == {"persoma_mlp-h50-recency-uem-frozen-on-textprompt_h10_title_score",
                 plan_lib.base_run_id()}  # the base is pulled in
  assert len(plan_lib.select(plan, None)) == len(plan)
  with pytest.raises(ValueError, match="nosuch"):
    plan_lib.select(plan, ["nosuch"])


def test_fingerprint_covers_included_gin_files():
  text = plan_lib.gin_closure_text("gin/experiments/persoma_mlp.gin")
  for inc in ("experiment.gin", "experiments/repro_common.gin", "adapters/mlp.gin"):
    assert (REPO / "gin" / inc).read_text() in text


def test_experiment_gin_files_parse_and_bind_the_run():
  """Each gin/experiments file + the harness's bindings gives the intended Experiment."""
  gin = pytest.importorskip("gin")
  from persoma.train import experiment as exp_lib  # pylint: disable=g-import-not-at-top
  from persoma.train import gin_cli  # pylint: disable=g-import-not-at-top
  runs = {r.run_id: r for r in plan_lib.build_plan(settings(data_dir="/d", model_size="tiny"),
                                                   fake_tokens)}
  want = {"persoma_mlp-h50-recency-uem-lora4-on-textprompt_h10_title_score": (
              "persoma", "mlp", "lora", 50),
          "persoma_perceiver-h5-recency-uem-full": ("persoma", "perceiver", "full", 5),
          "persoma_transformer-h100-recency-uem-full": ("persoma", "transformer", "full", 100),
          "uem-h10-recency-uem-full": ("uem", "uem", "full", 10),
          "textprompt-h10-recency-title_score-full": ("text", None, "full", 10),
          "persoma_pool-h100-recency-uem-full": ("persoma", "pool", "full", 100)}
  try:
    for rid, (comp, adapter, mode, n) in want.items():
      run = runs[rid]
      gin.clear_config()
      args = run.gin_args()
      gin_cli.parse([args[0].split("=", 1)[1]],
                    [a[len("--gin."):] for a in args[1:]] + ["MODEL_DIR='/tmp/x'"], "")
      exp = gin.get_configurable(exp_lib.Experiment)()
      assert exp.model.composition == comp and exp.training_mode == mode, rid
      assert exp.model.size == "tiny" and exp.task.history_size == n
      assert exp.task.data_config.data_dir == "/d"
      if adapter:
        assert exp.model.adapter == adapter
      if adapter == "pool":  # sized like PERSOMA-MLP (MLP_HIDDEN_DIM of repro_common.gin)
        assert exp.model.adapter_fields["pool"]["hidden_dim"] == gin.query_parameter(
            "%MLP_HIDDEN_DIM")
      if mode == "lora":
        assert exp.model.lora_rank == plan_lib.LORA_RANK
      if comp == "text":
        assert exp.task.text_prompt and exp.task.fmt == "title_score"
        assert exp.task.inputs_length == plan_lib.inputs_length_for(
            fake_tokens(10, "title_score"))
      assert exp.task.task_name.startswith(f"persoma_synthetic_h{n}_recency_")
  finally:
    gin.clear_config()


def test_cost_fingerprint_depends_on_cost_batch():
  a = {r.run_id: r for r in plan_lib.build_plan(settings(cost_batch=2), fake_tokens)}
  b = {r.run_id: r for r in plan_lib.build_plan(settings(cost_batch=8), fake_tokens)}
  assert a["cost-persoma_mlp-h10"].fingerprint() != b["cost-persoma_mlp-h10"].fingerprint()
  assert a["cost-persoma_mlp-h10"].gin_args() == b["cost-persoma_mlp-h10"].gin_args()
  assert a["rule-h5-recency"].fingerprint() == b["rule-h5-recency"].fingerprint()


def test_rationale_runs_get_longer_targets_only_where_the_gin_length_is_too_short(plan):
  rationale = [r for r in plan if r.method in plan_lib.RATIONALE_METHODS]
  assert {r.history_size for r in rationale} >= {5, 10, 50, 100}
  for r in rationale:
    want = plan_lib.RATIONALE_TARGETS_LENGTH.get(r.history_size)
    assert dict(r.bindings).get("TARGETS_LENGTH") == want, r.run_id
  assert all("TARGETS_LENGTH" not in dict(r.bindings) for r in plan
             if r.method not in plan_lib.RATIONALE_METHODS)


def test_longer_training_runs_bind_steps_and_start_from_the_next_shorter_run(plan):
  by_id = {r.run_id: r for r in plan}
  steps = [r for r in plan if "steps" in r.groups]
  base_steps = int(plan_lib.gin_default("TRAIN_STEPS"))
  long_train = plan_lib.LONG_TRAIN_METHODS
  budgets = {(m, x, f * base_steps) for m, by_labels in long_train.items()
             for x, fs in by_labels.items() for f in fs}
  assert {(r.method, r.resample_labels, r.train_steps) for r in steps} == budgets | {
      (m, x, None) for m, by_labels in long_train.items() for x in by_labels}
  for r in steps:
    if r.train_steps is None:
      assert "TRAIN_STEPS" not in dict(r.bindings) and r.warm_from is None
      continue
    factor = r.train_steps // base_steps
    assert r.run_id.endswith(f"-steps_x{factor}")
    assert dict(r.bindings)["TRAIN_STEPS"] == r.train_steps
    short = by_id[r.warm_from]
    # the next shorter budget of the same labels: no planned run of those labels lies between
    shorter = [f for f in long_train[r.method][r.resample_labels] if f < factor]
    assert (short.train_steps or base_steps) == (max(shorter, default=1) * base_steps)
    assert (short.method, short.resample_labels) == (r.method, r.resample_labels)
    assert {k: v for k, v in r.bindings if k != "TRAIN_STEPS"} == {
        k: v for k, v in short.bindings if k != "TRAIN_STEPS"}
    assert r.fingerprint() != short.fingerprint()
  assert any(by_id[r.warm_from].warm_from for r in steps if r.warm_from), "no chain of 3 budgets"
  # smoke settings scale the long budgets with --max_steps
  small = plan_lib.build_plan(settings(train_steps=20), fake_tokens)
  assert {r.train_steps for r in small if "steps" in r.groups} == {None} | {
      20 * f for by_labels in long_train.values() for fs in by_labels.values() for f in fs}


def test_tuned_label_runs_bind_the_rule_fitted_at_their_n(plan):
  runs = {r.run_id: r for r in plan}
  at_50 = dict(runs["persoma_genre_names_tuned_rank-h50-recency-uem-full-relabel_shown"].bindings)
  assert not any(k.startswith("SHOWN_") for k in at_50)  # the gin file's N=50 fit
  probe = json.loads((REPO / "benchmarks" / "repro" / "rule_probe.json").read_text())
  for n in (5, 10, 100):
    at_n = dict(runs[f"persoma_genre_names_tuned_rank-h{n}-recency-uem-full-relabel_shown"]
                .bindings)
    assert {k: v for k, v in at_n.items() if k.startswith("SHOWN_")} == probe["sizes"][str(n)][
        "gin"], n
  assert at_n["TARGETS_LENGTH"] == plan_lib.RATIONALE_TARGETS_LENGTH[100]


def test_group_10_continues_seed_2s_3x_run_on_its_own_and_on_counted_targets(plan):
  by_id = {r.run_id: r for r in plan}
  runs = [r for r in plan if "continued" in r.groups]
  assert sorted(r.method for r in runs) == sorted(plan_lib.CONTINUED_BY)
  base_steps = int(plan_lib.gin_default("TRAIN_STEPS"))
  for r in runs:
    src = by_id[r.warm_from]
    assert src.method == plan_lib.CONTINUED_METHOD and src.groups == ("seeds",)
    assert src.run_id.endswith(f"-steps_x{plan_lib.CONTINUED_FROM_FACTOR}-seed2")
    assert r.run_id.endswith(f"-steps_x{plan_lib.CONTINUED_FACTOR}-seed2")
    assert r.train_steps == plan_lib.CONTINUED_FACTOR * base_steps
    assert {k: v for k, v in r.bindings if k != "TRAIN_STEPS"} == {
        k: v for k, v in src.bindings if k != "TRAIN_STEPS"}
    # continuing on other targets changes the numbers: part of the identity; the same
    # method's continuation is the same trajectory as a run from step 0 (no identity)
    assert r.identity == ((() if r.method == src.method else (("continues", src.run_id),)))
  same, other = sorted(runs, key=lambda r: r.method != plan_lib.CONTINUED_METHOD)
  assert other.fingerprint() != dataclasses.replace(other, identity=()).fingerprint()
  assert "rationale_counts = True" in plan_lib.gin_closure_text(other.gin_file)
  assert "rationale_counts" not in plan_lib.gin_closure_text(same.gin_file)
