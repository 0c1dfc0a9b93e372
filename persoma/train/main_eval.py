"""`persoma-eval`: decode a split with a trained checkpoint and score it.

  persoma-eval --gin_file=gin/quickstart.gin --checkpoint=DIR --split=test --json \
      [--gin.KEY=VALUE ...]

DIR is a model directory (its best checkpoint, else its newest periodic one) or one step
directory (`MODEL_DIR/checkpoints/1200`). With --json the last stdout line is
`{"f1":..,"precision":..,"recall":..,"f1_liked":..,"f1_disliked":..,"split":..,"step":..,
"users":..}` (`f1_liked` / `f1_disliked`: the F1 of each half of the 38 classes), also written
beside the checkpoint as `eval_<split>_step<step>.json`. --predictions also writes
`inferences_<split>_step<step>.jsonl` there, one `{"user_id", "target", "prediction"}` line per
user, in split order. If --gin_file is omitted, DIR's model dir `config.gin` is used.

--max_examples K (K >= 1) scores only the first K users of the split (and of validation when
tuning a threshold); the JSON then says `max_examples` and the files get the suffix `_max<K>`
(`eval_<split>_step<step>_max<K>.json`, after any marginal suffix below), so a partial score
never replaces the full split's result.

--num_decodes K (K >= 2) replaces greedy decoding with thresholded label marginals
(`persoma.train.marginal_eval`): beam search gives K decodes per user, each of the 38 classes
is predicted when the probability mass of the decodes naming it reaches --threshold (a number
in (0, 1], or `tune`: the best of 0.01..0.04, 0.05..0.95 on the validation split, then
applied to --split).
The JSON then also holds `threshold`, `num_decodes`, `validation_f1` (at the threshold) and
`beam_top1` (the scores of the best beam alone); the file is
`eval_<split>_step<step>_beam<K>.json`. With --decode_method sample the K decodes are
independent samples at --temperature (seeded by --decode_seed) and a class's marginal is the
fraction of samples naming it; the JSON says `decode_method`, `temperature`, `decode_seed`,
holds `sample_top1` (the most likely sample) and the file is
`eval_<split>_step<step>_sample<K>[_t<temperature>][_seed<seed>].json` (the parts in brackets
where they differ from 1 and 0). With `--threshold tune` the JSON also reports, beside the one
cut, `side_thresholds`: separate cuts for the liked and the disliked genres tuned on validation
(`{'liked', 'disliked', 'validation_f1'}` and the scores of --split at that pair).

--readout rationale (a run trained with `PersomaDataConfig.target_rationale`) scores, in place
of the labels each decode states, the run's label rule applied to the rationale it wrote
(`persoma.metrics.readout`; a decode with no rationale keeps its stated labels), greedy or
marginal. The JSON says `readout`; greedy, it also holds `no_rationale` (decodes read as
stated) and `stated` (the scores of the labels the same decodes state); with --num_decodes it
also holds `consensus`: each user's K decodes read as one rationale (the genres at least half
of them write, each at the median or mean of the written means; `RationaleReadout.consensus`),
scored per center with its `validation_f1`. The files get the suffix `_readout` (after any
marginal suffix, before `_max<K>`). --readout_ties stated ranks equal written means by the
labels the decode states (the rule ranks them by movie count, which a rationale does not
write); the JSON then says `readout_ties` and the suffix is `_readout_stated_ties`. A run
without rationale targets is an error.
With --num_decodes and --predictions, `decodes_<split>_step<step><suffix>.jsonl` also holds
every decode: one `{"user_id", "target", "decodes": [K texts]}` line per user (and
`decodes_validation_...` those of the validation users, when they tune the cut).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Sequence

from persoma import errors, fileio
from persoma.train import partitioning


def result_suffix(method: str, num_decodes: int, temperature: float = 1.0, seed: int = 0) -> str:
  """The marginal result file's suffix: `_beam16`, `_sample64`, `_sample64_t1.5_seed2` (the
  temperature and seed of sampling only where they differ from 1 and 0)."""
  suffix = f"_{method}{num_decodes}"
  if method == "sample":
    suffix += (f"_t{temperature:g}" if temperature != 1.0 else "") + (
        f"_seed{seed}" if seed else "")
  return suffix


def partial_suffix(max_examples: int | None) -> str:
  """`_max<K>` for a score of the first K users only (`--max_examples K`), else ''."""
  return "" if max_examples is None else f"_max{max_examples}"


READOUTS = ("labels", "rationale")


def check_max_examples(max_examples: int | None) -> None:
  if max_examples is not None and max_examples < 1:
    raise ValueError(f"--max_examples={max_examples}: pass a number of users >= 1, or omit it "
                     "to score the whole split")


def evaluate(*, experiment: Any, checkpoint: str, split: str = "test", partitioner: Any = None,
             batch_size: int = 64, max_examples: int | None = None,
             write_predictions: bool = False, num_decodes: int = 1,
             threshold: float | str = "tune", decode_method: str = "beam",
             temperature: float = 1.0, decode_seed: int = 0,
             readout: str = "labels", readout_ties: str = "canonical") -> dict[str, Any]:
  """Scores `checkpoint` on `split` of the experiment's task; returns the result dict.

  With `num_decodes` K >= 2: thresholded label marginals over K decodes per user,
  `decode_method` 'beam' or 'sample' (at `temperature`, seeded by `decode_seed`). `readout`
  'rationale' scores the labels the run's rule reads from each decode's rationale, equal
  means ranked by `readout_ties` (`persoma.metrics.readout.TIES`).
  """
  check_max_examples(max_examples)
  if readout not in READOUTS:
    raise ValueError(f"--readout={readout!r}: use one of {READOUTS}")
  if num_decodes > 1 and threshold == "tune" and split == "validation":
    raise ValueError("--threshold tune picks the threshold on the validation split, so it "
                     "cannot score that split; pass a number, or score --split test")
  from persoma.train import marginal_eval  # pylint: disable=g-import-not-at-top
  if decode_method not in marginal_eval.METHODS:
    raise ValueError(f"--decode_method={decode_method!r}: use one of {marginal_eval.METHODS}")
  if decode_method == "sample" and not temperature > 0.0:
    raise ValueError(f"--temperature={temperature}: sampling needs a temperature > 0")
  if threshold != "tune":
    from persoma.metrics import marginals  # pylint: disable=g-import-not-at-top
    try:
      threshold = marginals.check_threshold(threshold)
    except ValueError as e:
      raise ValueError(f"--{e} (or 'tune')") from None
  from persoma.train import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  from persoma.train import optim  # pylint: disable=g-import-not-at-top
  from persoma.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  experiment.validate()  # a bad --gin override: one clear error before any data is read
  partitioner = partitioner or partitioning.Partitioner()
  task = experiment.task
  task.install()
  reader = None
  if readout == "rationale":
    from persoma.metrics import readout as readout_lib  # pylint: disable=g-import-not-at-top
    from persoma.seqio_tasks import config as config_lib  # pylint: disable=g-import-not-at-top
    reader = readout_lib.from_data_config(config_lib.get_config(), readout_ties)
  data = task.load(split, history_as_index=False)  # decoding takes dense features
  vocab = task.vocabulary()
  model = experiment.build_model(data.arrays, vocab.vocab_size, vocab)
  cfg = trainer_lib.TrainerConfig(train_steps=1, batch_size=batch_size, eval_batch_size=batch_size)
  tr = trainer_lib.Trainer(model, partitioner, optim.OptimizerConfig(), cfg, "", data.arrays,
                           decode_fn=experiment_lib.make_decoder(vocab), inference_only=True,
                           score_fn=reader.score_texts if reader else None)
  step, step_dir = tr.load_params_from(checkpoint)
  logging.info("Evaluating %s (step %d) on %s/%s", step_dir, step, task.task_name, split)
  suffix = ""
  if num_decodes > 1:
    out, predictions, decodes = _evaluate_marginals(tr, task, data, split, vocab, num_decodes,
                                                    threshold, batch_size, max_examples,
                                                    decode_method, temperature, decode_seed,
                                                    reader)
    suffix = result_suffix(decode_method, num_decodes, temperature, decode_seed)
  else:
    res = tr.evaluate(data.arrays, split, data.targets, max_examples)
    out = {k: res[k] for k in ("f1", "precision", "recall", "split", "step", "users",
                               "f1_liked", "f1_disliked") if k in res}
    predictions = tr.last_predictions
    if reader:  # the same decodes' stated labels, scored beside
      from persoma.train import evaluation  # pylint: disable=g-import-not-at-top
      stated = evaluation.score_texts(predictions, list(data.targets)[:len(predictions)])
      out["stated"] = {k: stated[k] for k in ("f1", "precision", "recall", "f1_liked",
                                              "f1_disliked")}
      out["no_rationale"] = reader.pairs(predictions)[1]
  if reader:
    out["readout"] = readout
    suffix += "_readout"
    if reader.ties != "canonical":
      out["readout_ties"] = reader.ties
      suffix += f"_{reader.ties}_ties"
  suffix += partial_suffix(max_examples)
  if max_examples is not None:
    out["max_examples"] = max_examples
  out["checkpoint"] = step_dir
  out["task"] = task.task_name
  where = os.path.dirname(step_dir)
  if write_predictions:
    out["predictions_file"] = write_inferences(
        os.path.join(where, f"inferences_{split}_step{step}{suffix}.jsonl"), predictions,
        data.targets, data.user_ids)
    for s, (texts, targets, user_ids) in (decodes if num_decodes > 1 else {}).items():
      # every decode (of the validation users too, where they tuned the cut): for
      # inspection and other readouts
      key = "decodes_file" if s == split else f"{s}_decodes_file"
      out[key] = write_decodes(os.path.join(where, f"decodes_{s}_step{step}{suffix}.jsonl"),
                               texts, targets, user_ids)
  trainer_lib.write_json(os.path.join(where, f"eval_{split}_step{step}{suffix}.json"), out)
  return out


def _evaluate_marginals(tr: Any, task: Any, data: Any, split: str, vocab: Any,
                        num_decodes: int, threshold: float | str, batch_size: int,
                        max_examples: int | None, method: str = "beam",
                        temperature: float = 1.0, seed: int = 0,
                        reader: Any = None
                        ) -> tuple[dict[str, Any], list[str], dict[str, tuple]]:
  """Thresholded beam or sample marginals on `split` (threshold tuned on validation if
  'tune'). Sampling draws the validation split, then `split`, from one seeded stream.
  `reader` (a `persoma.metrics.readout.RationaleReadout`; None: the labels the decodes state)
  reads each decode, and its `consensus` of each user's decodes is scored beside
  (`consensus`, per center). Returns the result, the thresholded labels as texts, and per
  split decoded (`split`, and validation when tuning) `(each user's decodes, targets, user
  ids)`."""
  from persoma.metrics.readout import CENTERS  # pylint: disable=g-import-not-at-top
  indicator_fn = reader.indicators if reader else None
  from persoma.train import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  from persoma.metrics import marginals  # pylint: disable=g-import-not-at-top
  from persoma.train import marginal_eval  # pylint: disable=g-import-not-at-top
  decode_fn = experiment_lib.make_decoder(vocab)
  beam_fn = marginal_eval.make_decode_fn(tr, num_decodes, method, temperature,
                                        seed)  # one compile for both splits
  extra: dict[str, Any] = {}
  decodes: dict[str, tuple] = {}
  if threshold == "tune":
    val = task.load("validation", history_as_index=False)
    vm = marginal_eval.decode_marginals(tr, val.arrays, "validation", decode_fn, num_decodes,
                                        batch_size, max_examples, beam_fn=beam_fn,
                                        method=method, indicator_fn=indicator_fn)
    y_val = marginal_eval.truth(val.targets, len(vm["texts"]))
    decodes["validation"] = (vm["texts"], val.targets, val.user_ids)
    if reader:
      val_consensus = {c: marginal_eval.score_indicators(
          reader.consensus_indicators(vm["texts"], c), y_val)["f1"] for c in CENTERS}
    tau, curve = marginals.tune_threshold(vm["marginals"], y_val)
    tau_l, tau_d, side_f1 = marginals.tune_side_thresholds(vm["marginals"], y_val)
    extra = {"validation_f1": curve[tau], "validation_users": len(vm["texts"]),
             "validation_curve": {f"{t:.2f}": round(f, 4) for t, f in curve.items()},
             "side_thresholds": {"liked": tau_l, "disliked": tau_d, "validation_f1": side_f1}}
    logging.info("threshold %.2f: validation f1 %.4f (%d users)", tau, curve[tau],
                 len(vm["texts"]))
  else:
    tau = float(threshold)
  m = marginal_eval.decode_marginals(tr, data.arrays, split, decode_fn, num_decodes,
                                     batch_size, max_examples, beam_fn=beam_fn,
                                     method=method, indicator_fn=indicator_fn)
  y_true = marginal_eval.truth(data.targets, len(m["texts"]))
  res = marginal_eval.score(m["marginals"], y_true, tau)
  top1 = marginal_eval.score_indicators(m["top1"], y_true)
  out = {k: res[k] for k in ("f1", "precision", "recall", "f1_liked", "f1_disliked")}
  out.update(split=split, step=tr.step, users=len(m["texts"]), num_decodes=num_decodes,
             threshold=tau, **{f"{method}_top1": {k: top1[k] for k in ("f1", "precision",
                                                                      "recall", "f1_liked",
                                                                      "f1_disliked")}},
             **extra)
  if "side_thresholds" in out:
    sides = out["side_thresholds"]
    scored = marginal_eval.score_indicators(
        marginals.threshold_sides(m["marginals"], sides["liked"], sides["disliked"]), y_true)
    sides.update({k: scored[k] for k in ("f1", "precision", "recall", "f1_liked",
                                         "f1_disliked")})
  if method == "sample":
    out.update(decode_method=method, temperature=temperature, decode_seed=seed)
  if reader:
    out["consensus"] = {}
    for c in CENTERS:
      scored = marginal_eval.score_indicators(reader.consensus_indicators(m["texts"], c), y_true)
      out["consensus"][c] = {k: scored[k] for k in ("f1", "precision", "recall", "f1_liked",
                                                    "f1_disliked")}
      if threshold == "tune":
        out["consensus"][c]["validation_f1"] = val_consensus[c]
  predicted = marginals.threshold(m["marginals"], tau)
  decodes[split] = (m["texts"], data.targets, data.user_ids)
  return out, marginal_eval.texts_of(predicted), decodes


def write_decodes(path: str, decodes: Sequence[Sequence[str]], targets: Sequence[str],
                  user_ids: Sequence[int] | None) -> str:
  """Writes one `{"user_id", "target", "decodes": [K texts]}` JSON line per example (the
  most likely last, beams or samples), atomically by the lead process."""
  from persoma.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  trainer_lib.write_shared(path, "".join(
      json.dumps({"user_id": int(user_ids[i]) if user_ids is not None else None,
                  "target": targets[i], "decodes": list(texts)}) + "\n"
      for i, texts in enumerate(decodes)))
  return path


def write_inferences(path: str, predictions: Sequence[str], targets: Sequence[str],
                     user_ids: Sequence[int] | None) -> str:
  """Writes one `{"user_id", "target", "prediction"}` JSON line per example
  (`trainer.write_shared`: atomically, by the lead process)."""
  from persoma.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  trainer_lib.write_shared(path, "".join(
      json.dumps({"user_id": int(user_ids[i]) if user_ids is not None else None,
                  "target": targets[i], "prediction": pred}) + "\n"
      for i, pred in enumerate(predictions)))
  return path


def read_inferences(path: str) -> tuple[list, list[str], list[str]]:
  """`(user ids, targets, predictions)` of a file `write_inferences` wrote (blank lines
  skipped; a missing `user_id` reads as None). A line that is not such an object, or a file
  with none, is a ValueError naming the file and line."""
  ids, targets, preds = [], [], []
  with fileio.open(path) as f:
    for i, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        obj = json.loads(line)
        targets.append(str(obj["target"]))
        preds.append(str(obj["prediction"]))
        ids.append(obj.get("user_id"))
      except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}:{i}: not a persoma-eval inference line ({e})") from None
  if not preds:
    raise ValueError(f"{path}: no inference lines")
  return ids, targets, preds


def model_dir_of(path: str) -> str:
  """The nearest of `path` and its two parents that holds a `config.gin` (absolute), or ""."""
  path = fileio.absolute(path.rstrip("/"))
  for _ in range(3):
    if fileio.exists(os.path.join(path, "config.gin")):
      return path
    path = os.path.dirname(path)
  return ""


def main(argv: Sequence[str] | None = None) -> int:
  from persoma.train import gin_cli  # pylint: disable=g-import-not-at-top
  p, bindings, rest = gin_cli.gin_parser("persoma-eval", __doc__, argv)
  p.add_argument("--checkpoint", required=True, help="model dir or one checkpoint step dir")
  p.add_argument("--split", default="test", choices=("train", "validation", "test"))
  p.add_argument("--json", action="store_true", help="print the result JSON as the last line")
  p.add_argument("--max_examples", type=int, default=None,
                 help="score only the first K >= 1 users (result file suffix _max<K>)")
  p.add_argument("--predictions", action="store_true",
                 help="also write inferences_<split>_step<step>.jsonl beside the checkpoint "
                 "(with --num_decodes, every decode in decodes_<split>_step<step>*.jsonl)")
  p.add_argument("--num_decodes", type=int, default=1,
                 help="K >= 2: thresholded label marginals over K decodes (see above)")
  p.add_argument("--decode_method", default="beam", choices=("beam", "sample"),
                 help="with --num_decodes: K beams, or K independent temperature samples")
  p.add_argument("--temperature", type=float, default=1.0,
                 help="with --decode_method sample: softmax temperature (> 0)")
  p.add_argument("--decode_seed", type=int, default=0,
                 help="with --decode_method sample: seed of the samples")
  p.add_argument("--threshold", default="tune",
                 help="with --num_decodes: marginal cut in (0, 1], or 'tune' on validation")
  p.add_argument("--readout", default="labels", choices=READOUTS,
                 help="rationale: score the run's rule on each decode's written rationale")
  p.add_argument("--readout_ties", default="canonical", choices=("canonical", "stated"),
                 help="with --readout rationale: equal written means rank in canonical genre "
                 "order, or the genres the decode's labels state first")
  p.add_argument("--verbose", action="store_true")
  a = p.parse_args(rest)
  if a.num_decodes < 1:
    p.error(f"--num_decodes must be >= 1, got {a.num_decodes}")
  try:
    check_max_examples(a.max_examples)
  except ValueError as e:
    p.error(str(e))
  if a.decode_method == "sample" and a.num_decodes < 2:
    p.error("--decode_method sample scores label marginals over several samples: pass "
            "--num_decodes K with K >= 2")
  if a.readout_ties != "canonical" and a.readout != "rationale":
    p.error(f"--readout_ties {a.readout_ties} ranks the means a rationale states: pass "
            "--readout rationale")
  gin_cli.setup_logging(a.verbose)
  partitioning.maybe_initialize_distributed()
  import gin  # pylint: disable=g-import-not-at-top
  files = list(a.gin_file)
  if not files:
    md = model_dir_of(a.checkpoint)
    if not md:
      raise SystemExit(f"error: no --gin_file and no config.gin found above {a.checkpoint}")
    files = [os.path.join(md, "config.gin")]
  # MODEL_DIR (required by runs/train.gin) is not used here.
  gin_cli.parse(files + ["runs/eval.gin"], ["MODEL_DIR=None"] + list(a.gin_bindings) + bindings,
                a.gin_search_paths)
  from persoma.train import checkpointing  # pylint: disable=g-import-not-at-top
  from persoma.train import main_eval as this  # pylint: disable=g-import-not-at-top
  try:
    out = gin.get_configurable(this.evaluate)(checkpoint=a.checkpoint, split=a.split,
                                              max_examples=a.max_examples,
                                              write_predictions=a.predictions,
                                              num_decodes=a.num_decodes, threshold=a.threshold,
                                              decode_method=a.decode_method,
                                              temperature=a.temperature,
                                              decode_seed=a.decode_seed,
                                              readout=a.readout,
                                              readout_ties=a.readout_ties)
  except (checkpointing.CheckpointMismatchError, errors.ConfigError) as e:
    raise SystemExit(f"error: {errors.one_line(e)}") from None
  line = {k: out[k] for k in ("f1", "precision", "recall", "f1_liked", "f1_disliked", "split",
                               "step", "users", "max_examples", "num_decodes",
                               "decode_method", "temperature", "decode_seed", "threshold",
                               "validation_f1", "beam_top1", "sample_top1", "side_thresholds",
                               "readout", "readout_ties", "no_rationale", "stated",
                               "consensus")
          if k in out}
  if a.json:
    print(json.dumps(line), flush=True)
  else:
    print(f"{out['task']} {a.split} step {out['step']}: f1 {out['f1']:.4f} precision "
          f"{out['precision']:.4f} recall {out['recall']:.4f} (liked f1 "
          f"{out.get('f1_liked', float('nan')):.4f}, not liked f1 "
          f"{out.get('f1_disliked', float('nan')):.4f}; {out['users']} users)"
          + (" read from the rationales" if "readout" in out else ""))
    if "threshold" in out:
      sampled = "sample_top1" in out
      t1 = out["sample_top1" if sampled else "beam_top1"]
      what = (f"samples at temperature {out['temperature']:g}" if sampled else "beams")
      print(f"  {out['num_decodes']} {what}, threshold {out['threshold']:.2f}"
            + (f" (validation f1 {out['validation_f1']:.4f})" if "validation_f1" in out else "")
            + f"; best {'sample' if sampled else 'beam'} alone: f1 {t1['f1']:.4f} precision "
            f"{t1['precision']:.4f} recall {t1['recall']:.4f}")
    if "side_thresholds" in out:
      sd = out["side_thresholds"]
      print(f"  separate cuts, liked {sd['liked']:.2f} / disliked {sd['disliked']:.2f} "
            f"(validation f1 {sd['validation_f1']:.4f}): f1 {sd['f1']:.4f} precision "
            f"{sd['precision']:.4f} recall {sd['recall']:.4f}")
    for center, c in out.get("consensus", {}).items():
      print(f"  consensus of each user's decodes ({center} means): f1 {c['f1']:.4f} precision "
            f"{c['precision']:.4f} recall {c['recall']:.4f}"
            + (f" (validation f1 {c['validation_f1']:.4f})" if "validation_f1" in c else ""))
    if "predictions_file" in out:
      print(f"predictions: {out['predictions_file']}")
    if "decodes_file" in out:
      print(f"every decode: {out['decodes_file']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
