"""`persoma.metrics.readout`: labels read from a written rationale by the run's label rule."""

from __future__ import annotations

import numpy as np
import pytest

from persoma import errors
from persoma.data import formats, labels
from persoma.metrics import readout, verbalizer, weighted
from persoma.seqio_tasks import config as config_lib

TUNED = labels.LabelConfig(min_genre_count=2, like_threshold=3.65, dislike_threshold=2.75,
                           max_liked=3, max_disliked=2)


def _text(means, liked, disliked, header=formats.RATIONALE_HEADER):
  head = formats.format_rationale(list(means), list(means.values()), header)
  return f"{head} {formats.format_target(liked, disliked)}"


def test_labels_from_means_apply_thresholds_caps_and_canonical_tie_order():
  means = {"Drama": 4.5, "Action": 3.7, "War": 3.7, "Comedy": 3.6, "Horror": 2.0,
           "Crime": 2.5, "Western": 2.7, "Musical": 2.9}
  lab = readout.labels_from_means(means, TUNED)
  assert lab.liked == ("Drama", "Action", "War")  # Comedy 3.6 under 3.65; Action before War
  assert lab.disliked == ("Horror", "Crime")  # at most 2, worst first; 2.9 not under 2.75
  default = readout.labels_from_means(means, labels.LabelConfig())
  assert default.liked == ("Drama", "Action", "War") and default.disliked == (
      "Horror", "Crime", "Western")
  assert readout.labels_from_means({}, TUNED) == labels.UserLabels((), ())


def test_canonical_means_normalise_names_and_drop_unknown_and_repeats():
  got = readout.canonical_means({"children's": 4.0, "Sci-Fi": 2.0, "Dance": 5.0,
                                 "Children": 1.0})
  assert got == {"Children": 4.0, "Sci-Fi": 2.0}
  # a mean off the star scale is dropped, and the genre's later entries stay dropped with it
  assert readout.canonical_means({"Drama": 1333.0, "drama": 4.0, "War": 0.2, "Comedy": 5.0,
                                  "Horror": 0.5}) == {"Comedy": 5.0, "Horror": 0.5}
  r = readout.RationaleReadout(rule=TUNED)
  assert r.read("Shown: Children 1333, Drama 3 4.00. Liked Genres: Children. Not Liked Genres: "
                "None")[0] == (("Drama",), ())


def test_read_takes_the_rule_of_each_header_and_falls_back_to_stated_labels():
  r = readout.RationaleReadout(rule=TUNED, whole_rule=labels.LabelConfig())
  means = {"Drama": 4.5, "Comedy": 3.6, "War": 2.9, "Horror": 2.0}
  # the stated labels are wrong on purpose: the readout ignores them
  shown = _text(means, ["Western"], ["Drama"])
  whole = _text(means, ["Western"], ["Drama"], formats.WHOLE_RATIONALE_HEADER)
  assert r.read(shown) == ((("Drama",), ("Horror",)), True)
  assert r.read(whole) == ((("Drama", "Comedy"), ("Horror", "War")), True)
  assert r.rule_for(whole) == labels.LabelConfig() and r.rule_for(shown) == TUNED
  # without a whole rule every header is read under `rule`
  assert readout.RationaleReadout(rule=TUNED).read(whole)[0] == (("Drama",), ("Horror",))
  plain = formats.format_target(["Western"], ["Drama"])
  assert r.read(plain) == ((("Western",), ("Drama",)), False)
  pairs, missing = r.pairs([shown, plain, whole])
  assert missing == 1 and pairs[1] == (("Western",), ("Drama",))
  ind = r.indicators([shown, plain])
  assert ind.shape == (2, 38) and np.array_equal(ind, verbalizer.indicator_matrix(pairs[:2]))


def test_score_texts_scores_the_read_labels_against_the_stated_targets():
  r = readout.RationaleReadout(rule=TUNED)
  means = {"Drama": 4.5, "Horror": 2.0}
  targets = [_text(means, ["Drama"], ["Horror"]), formats.format_target(["Comedy"], [])]
  preds = [_text(means, ["Western"], []), formats.format_target(["Comedy"], [])]
  got = r.score_texts(preds, targets)
  assert got["f1"] == pytest.approx(1.0) and got["readout/no_rationale"] == 1.0
  stated = weighted.score_texts(targets, preds)  # the stated labels miss Drama and Horror
  assert stated["f1"] < 0.6
  assert set(got) >= {"f1", "precision", "recall", "f1_liked", "f1_disliked"}
  with pytest.raises(ValueError, match="1 predictions but 2 targets"):
    r.score_texts(preds[:1], targets)
  with pytest.raises(ValueError, match="empty split"):
    r.score_texts([], [])


def test_from_data_config_takes_the_runs_rules_and_refuses_a_run_without_rationales():
  with pytest.raises(errors.ConfigError, match="target_rationale is False"):
    readout.from_data_config(config_lib.PersomaDataConfig())
  plain = readout.from_data_config(config_lib.PersomaDataConfig(target_rationale=True))
  assert plain == readout.RationaleReadout(labels.LabelConfig(), None)
  tuned = readout.from_data_config(config_lib.PersomaDataConfig(
      target_rationale=True, shown_label_config=TUNED, whole_rationale=True))
  assert tuned.rule == TUNED and tuned.whole_rule == labels.LabelConfig()
  own = labels.LabelConfig(min_genre_count=4)
  ruled = readout.from_data_config(config_lib.PersomaDataConfig(
      target_rationale=True, label_config=own))
  assert ruled.rule == own and ruled.whole_rule is None


def test_consensus_reads_k_decodes_as_one_rationale_of_their_median_means():
  r = readout.RationaleReadout(rule=TUNED, whole_rule=labels.LabelConfig())
  # Each decode alone names a different liked genre (a noisy 3.6x digit each time); the
  # median of the three written means (3.70 for Action) is what the rule reads.
  decodes = [_text({"Action": 3.70, "Drama": 3.60, "War": 3.20}, [], []),
             _text({"Action": 3.60, "Drama": 3.70, "Horror": 2.00}, [], []),
             _text({"Action": 3.80, "Drama": 3.50, "War": 3.30}, [], [])]
  assert [r.read(t)[0][0] for t in decodes] == [("Action",), ("Drama",), ("Action",)]
  # War is written by 2 of 3 decodes (kept, median 3.25: neither side), Horror by 1 (dropped)
  assert r.consensus(decodes) == ((("Action",), ()), True)
  mean = r.consensus(decodes, "mean")  # Action 3.70, Drama 3.60: the same labels here
  assert mean == ((("Action",), ()), True)
  skewed = decodes[:2] + [_text({"Action": 0.50, "Drama": 4.90}, [], [])]
  assert r.consensus(skewed)[0][0] == ("Drama",)  # median: Action 3.60, Drama 3.70
  assert r.consensus(skewed, "mean")[0] == (("Drama",), ("Action",))  # Action 2.60
  # The header most decodes write picks the decodes read and their rule (Whole: 3.5 / 3.0)
  whole = formats.WHOLE_RATIONALE_HEADER
  mixed = [_text({"Comedy": 3.6}, [], [], whole), _text({"Comedy": 3.55}, [], [], whole),
           _text({"Horror": 1.0}, [], [])]
  assert r.consensus(mixed) == ((("Comedy",), ()), True)
  # No rationale at all: the classes at least half of the decodes state
  plain = [formats.format_target(["Comedy"], ["Horror"]), formats.format_target(["Comedy"], []),
           formats.format_target(["War"], [])]
  assert r.consensus(plain) == ((("Comedy",), ()), False)
  ind = r.consensus_indicators([decodes, plain])
  assert ind.shape == (2, 38) and np.array_equal(
      ind, verbalizer.indicator_matrix([(("Action",), ()), (("Comedy",), ())]))
  with pytest.raises(ValueError, match="consensus center 'mode'"):
    r.consensus(decodes, "mode")
  with pytest.raises(ValueError, match="no decodes"):
    r.consensus([])


def test_stated_ties_rank_equal_means_by_the_labels_the_decode_states():
  means = {"Action": 4.0, "Comedy": 4.0, "Drama": 4.0, "War": 4.0, "Horror": 2.0}
  text = _text(means, ["War", "Comedy", "Western"], ["Horror"])  # Western: not written
  canonical = readout.RationaleReadout(rule=TUNED)
  stated = readout.RationaleReadout(rule=TUNED, ties="stated")
  assert canonical.read(text)[0][0] == ("Action", "Comedy", "Drama")
  # the stated War and Comedy first (then canonical order among them), then Action
  assert stated.read(text)[0][0] == ("Comedy", "War", "Action")
  # a higher mean still outranks any stated genre
  high = _text(dict(means, Drama=4.5), ["War", "Comedy"], [])
  assert stated.read(high)[0][0] == ("Drama", "Comedy", "War")
  # consensus: the share of the kept decodes that state each genre ranks the ties
  decodes = [_text(means, ["War"], []), _text(means, ["War", "Drama"], []),
             _text(means, ["Drama"], []), _text(means, ["Action"], [])]
  assert stated.consensus(decodes)[0][0] == ("Drama", "War", "Action")
  assert canonical.consensus(decodes)[0][0] == ("Action", "Comedy", "Drama")
  assert readout.labels_from_means(means, TUNED, {"War": 0.5}).liked == ("War", "Action", "Comedy")
  assert readout.from_data_config(config_lib.PersomaDataConfig(target_rationale=True),
                                  ties="stated").ties == "stated"
  with pytest.raises(ValueError, match="readout ties 'counts'"):
    readout.RationaleReadout(ties="counts")


def test_written_counts_make_the_readout_the_rule_itself_ties_included():
  """On rationales written with counts the readout gives exactly the rule's labels on the
  statistics, where canonical tie order (no counts) differs for some users."""
  rng = np.random.default_rng(0)
  r = readout.RationaleReadout(rule=TUNED)
  genres = labels.genres_lib.GENRES
  differ = 0
  for _ in range(300):
    # counts whose means are exact to two decimals, so equal means are the only ties
    counts = rng.choice([0, 1, 2, 4, 5, 10, 20], size=len(genres))
    sums = np.array([rng.integers(c, 5 * c + 1) if c else 0 for c in counts], dtype=float)
    ok = [i for i in range(len(genres)) if counts[i] >= TUNED.min_genre_count]
    names, means = [genres[i] for i in ok], [sums[i] / counts[i] for i in ok]
    head = formats.format_rationale(names, means, counts=[int(counts[i]) for i in ok])
    text = f"{head} {formats.format_target([], [])}"
    want = labels.labels_from_stats(sums, counts, TUNED)
    assert r.read(text)[0] == (want.liked, want.disliked)
    assert r.consensus([text, text])[0] == (want.liked, want.disliked)
    bare = f"{formats.format_rationale(names, means)} {formats.format_target([], [])}"
    differ += r.read(bare)[0] != (want.liked, want.disliked)
  assert differ > 0
  # a written count under the rule's min_genre_count disqualifies the genre, as the rule does
  text = _text({}, [], []).replace("Shown: None.", "Shown: Drama 1 4.50, War 3 4.00.")
  assert r.read(text)[0] == (("War",), ())
  assert readout.canonical_counts({"children's": (4.0, 3), "Dance": (5.0, 2),
                                   "Children": (1.0, 9), "War": (2.0, None)}) == {"Children": 3}
