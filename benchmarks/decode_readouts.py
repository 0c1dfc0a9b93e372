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

  python benchmarks/decode_readouts.py \
      <model dir>/best/decodes_test_step7500_sample64_readout.jsonl [--validation FILE] \
      [--json OUT]
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


def read_decodes(path: str) -> tuple[list[list[str]], np.ndarray]:
  """Each user's decodes and the `[n, 38]` target indicators of a decodes JSONL file; a bad
  line is a ValueError naming the file and line."""
  groups, targets = [], []
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
  if not groups:
    raise ValueError(f"{path}: no decodes")
  return groups, verbalizer.parse_many(targets)[0]


def _f1(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
  out = weighted.weighted_prf(truth, pred)
  return {k: round(float(out[k]), 4) for k in ("f1", "precision", "recall")}


def score(splits: dict[str, tuple[list[list[str]], np.ndarray]],
          readers: dict[str, readout.RationaleReadout]) -> dict[str, dict]:
  """`{readout name: {'validation': scores, 'test': scores, 'threshold'?}}` for `splits`
  (`{'validation': (groups, truth), 'test': ...}`) and one reader per tie order."""
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
  ap.add_argument("test_file", help="decodes_test_step<S>_sample<K>_readout.jsonl")
  ap.add_argument("--validation", default=None,
                  help="the validation users' decodes (default: the decodes_validation_ file "
                  "beside test_file)")
  ap.add_argument("--json", default=None,
                  help="also write the figures here, keyed by test file (added to the file's "
                  "other entries, which are kept)")
  a = ap.parse_args(argv)
  try:
    kept = atomic_io.read_json_to_extend(a.json, dict) if a.json else {}
  except ValueError as e:
    raise SystemExit(f"error: --json {e}") from None
  name = os.path.basename(a.test_file)
  if not name.startswith("decodes_test_") or "_beam" in name:
    ap.error(f"{a.test_file}: expected a decodes_test_*_sample<K>*.jsonl file (the share of "
             "beams is not a beam marginal)")
  val_file = a.validation or os.path.join(os.path.dirname(a.test_file),
                                          "decodes_validation_" + name[len("decodes_test_"):])
  try:
    splits = {"validation": read_decodes(val_file), "test": read_decodes(a.test_file)}
  except OSError as e:
    raise SystemExit(f"error: {e.filename}: {e.strerror}") from None
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  cfg, source, whole = rationale_check.run_rules(a.test_file)
  readers = {t: readout.RationaleReadout(cfg, whole, ties=t) for t in readout.TIES}
  res = score(splits, readers)
  print(f"rule: {source}; {len(splits['validation'][0])} validation and "
        f"{len(splits['test'][0])} test users, {len(splits['test'][0][0])} decodes each")
  print(f"{'readout':<40} {'validation F1':>13} {'test F1':>8} {'P':>6} {'R':>6}  cut")
  for k, v in res.items():
    cut = f"{v['threshold']:.2f}" if "threshold" in v else ""
    print(f"{k:<40} {v['validation']['f1']:>13.4f} {v['test']['f1']:>8.4f} "
          f"{v['test']['precision']:>6.3f} {v['test']['recall']:>6.3f}  {cut}")
  summary = {"test_file": rationale_check.file_key(a.test_file),
             "validation_file": rationale_check.file_key(val_file), "rule": source,
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
