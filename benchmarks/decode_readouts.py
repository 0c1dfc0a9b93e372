"""Every readout of one sampled decode of a rationale run, scored from its decodes files.

`persoma-eval --num_decodes K --decode_method sample --readout rationale --predictions` writes
each user's K samples, of the test users (`decodes_test_step<S>_sample<K>_readout.jsonl`) and
of the validation users who tune its cut (`decodes_validation_...`). This scores, on both
splits, without decoding again:

  * marginals (the share of samples naming each class, cut tuned on the validation users) of
    the labels the samples state, and of the labels read from their rationales (equal written
    means ranked in canonical genre order, or by the labels each sample states:
    `persoma.metrics.readout.TIES`);
  * the consensus rationale of each user's samples (`RationaleReadout.consensus`: the genres
    at least half of them write, at the median or mean of the written means), per tie order;
  * the most likely sample alone (the last of each user's, as persoma-eval sorts them), read
    each way.

The rules are the run's, from the `config.gin` above the file (`benchmarks/rationale_check.py`
reads them the same way). Which readout to report is the validation users' choice; the table
gives both splits. `--json` keeps one entry per test file (its absolute path, the home
directory as ~), beside the entries of other files already in it.

Several test files (runs of the same users under one rule, e.g. seeds or a run and its
continuation) are read as one ensemble: each user's decodes of all of them pooled, keyed in
`--json` by the files joined with ` + ` (no likeliest-sample rows: the pool has no one
likeliest).

  python benchmarks/decode_readouts.py \
      <model dir>/best/decodes_test_step7500_sample64_readout.jsonl [MORE TEST FILES] \
      [--validation FILE] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rationale_check  # noqa: E402  (the run's rules from its config.gin)
from persoma import atomic_io  # noqa: E402
from persoma.metrics import marginals, readout, verbalizer, weighted  # noqa: E402


def read_decodes(path: str) -> tuple[list[list[str]], np.ndarray, list]:
  """Each user's decodes, the `[n, 38]` target indicators and the user ids (None where a line
  has none) of a decodes JSONL file; a bad line is a ValueError naming the file and line."""
  groups, targets, ids = [], [], []
  with open(os.path.expanduser(path)) as f:
    for i, line in enumerate(f, 1):
      try:
        row = json.loads(line)
        texts, target = row["decodes"], row["target"]
        if not texts or not all(isinstance(t, str) for t in texts):
          raise ValueError("'decodes' must be a non-empty list of texts")
      except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}:{i}: not a decodes line ({e})") from None
      groups.append(texts)
      targets.append(target)
      ids.append(row.get("user_id"))
  if not groups:
    raise ValueError(f"{path}: no decodes")
  return groups, verbalizer.parse_many(targets)[0], ids


def pool(parts: list[tuple[str, tuple[list[list[str]], np.ndarray, list]]]
         ) -> tuple[list[list[str]], np.ndarray]:
  """Several runs' `read_decodes` of the same users as one: `(groups, truth)`, each user's
  decodes run after run. `parts` is `[(path, read_decodes(path))]`; runs of other users or
  target labels (their target rationales may differ) are a ValueError naming both files."""
  ref, (first, truth, ids) = parts[0]
  groups = [list(g) for g in first]
  for path, (more, other_truth, other_ids) in parts[1:]:
    rationale_check.check_same_users(path, other_ids, other_truth, ref, ids, truth)
    for mine, theirs in zip(groups, more):
      mine.extend(theirs)
  return groups, truth


def _f1(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
  out = weighted.weighted_prf(truth, pred)
  return {k: round(float(out[k]), 4) for k in ("f1", "precision", "recall")}


def score(splits: dict[str, tuple[list[list[str]], np.ndarray]],
          readers: dict[str, readout.RationaleReadout], likeliest: bool = True
          ) -> dict[str, dict]:
  """`{readout name: {'validation': scores, 'test': scores, 'threshold'?}}` for `splits`
  (`{'validation': (groups, truth), 'test': ...}`) and one reader per tie order; without
  `likeliest` (pooled runs, whose last decode is only the last run's likeliest), no
  likeliest-sample rows."""
  def sample_indicators(groups, fn):
    flat = [t for g in groups for t in g]
    k = len(groups[0])
    if any(len(g) != k for g in groups):
      raise ValueError("every user needs the same number of decodes")
    return np.asarray(fn(flat)).reshape((len(groups), k, -1))

  readings = {"stated": lambda texts: verbalizer.parse_many(texts)[0]}
  readings.update({f"read, {t} ties": r.indicators for t, r in readers.items()})
  out: dict[str, dict] = {}
  for name, fn in readings.items():
    ind = {s: sample_indicators(g, fn) for s, (g, _) in splits.items()}
    marg = {s: marginals.sample_marginals(x) for s, x in ind.items()}
    tau, _ = marginals.tune_threshold(marg["validation"], splits["validation"][1])
    out[f"marginals, {name}"] = {"threshold": tau, **{
        s: _f1(splits[s][1], marginals.threshold(marg[s], tau)) for s in splits}}
    if likeliest:
      out[f"likeliest sample, {name}"] = {s: _f1(splits[s][1], ind[s][:, -1, :])
                                          for s in splits}
  for t, r in readers.items():
    for c in readout.CENTERS:
      out[f"consensus ({c}), {t} ties"] = {
          s: _f1(truth, r.consensus_indicators(groups, c)) for s, (groups, truth) in
          splits.items()}
  return out


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("test_files", nargs="+", metavar="test_file",
                  help="decodes_test_step<S>_sample<K>_readout.jsonl; several (runs of the "
                  "same users and rule) pool each user's decodes")
  ap.add_argument("--validation", default=None,
                  help="the validation users' decodes of a single test_file (default: the "
                  "decodes_validation_ file beside each test_file)")
  ap.add_argument("--json", default=None,
                  help="also write the figures here, keyed by test file (added to the file's "
                  "other entries, which are kept)")
  a = ap.parse_args(argv)
  try:
    kept = atomic_io.read_json_to_extend(a.json, dict) if a.json else {}
  except ValueError as e:
    raise SystemExit(f"error: --json {e}") from None
  if a.validation and len(a.test_files) > 1:
    ap.error("--validation names the validation decodes of one test_file; with several, each "
             "test_file's decodes_validation_ file beside it is read")
  val_files = []
  for test_file in a.test_files:
    name = os.path.basename(test_file)
    if not name.startswith("decodes_test_") or "_beam" in name:
      ap.error(f"{test_file}: expected a decodes_test_*_sample<K>*.jsonl file (the share of "
               "beams is not a beam marginal)")
    val_files.append(a.validation or os.path.join(
        os.path.dirname(test_file), "decodes_validation_" + name[len("decodes_test_"):]))
  try:
    splits = {split: pool([(f, read_decodes(f)) for f in files]) for split, files in
              (("validation", val_files), ("test", a.test_files))}
  except OSError as e:
    raise SystemExit(f"error: {e.filename}: {e.strerror}") from None
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  cfg, source, whole = rationale_check.shared_rules(a.test_files)
  readers = {t: readout.RationaleReadout(cfg, whole, ties=t) for t in readout.TIES}
  res = score(splits, readers, likeliest=len(a.test_files) == 1)
  print(f"rule: {source}; {len(splits['validation'][0])} validation and "
        f"{len(splits['test'][0])} test users, {len(splits['test'][0][0])} decodes each")
  print(f"{'readout':<40} {'validation F1':>13} {'test F1':>8} {'P':>6} {'R':>6}  cut")
  for k, v in res.items():
    cut = f"{v['threshold']:.2f}" if "threshold" in v else ""
    print(f"{k:<40} {v['validation']['f1']:>13.4f} {v['test']['f1']:>8.4f} "
          f"{v['test']['precision']:>6.3f} {v['test']['recall']:>6.3f}  {cut}")
  summary = {"test_file": " + ".join(map(rationale_check.file_key, a.test_files)),
             "validation_file": " + ".join(map(rationale_check.file_key, val_files)),
             "rule": source,
             "readouts": res,
             "command": "python benchmarks/decode_readouts.py " + " ".join(
                 rationale_check.file_key(x) if os.path.isabs(os.path.expanduser(x)) else x
                 for x in (argv if argv is not None else sys.argv[1:]))}
  print(json.dumps(summary))
  if a.json:
    atomic_io.write_text(a.json, json.dumps({**kept, summary["test_file"]: summary}, indent=1,
                                            sort_keys=True) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
