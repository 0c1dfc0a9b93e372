"""build_examples: one example per labelled user, deterministic, split-respecting."""

import numpy as np
import pytest

from persoma.data import build_examples, formats, labels, samplers, split
from persoma.data.labels import LabelConfig


def test_examples_match_labels_and_split(tiny_data):
  exs = build_examples(tiny_data, split="all", history_size=10, sampler="recency")
  labs = labels.user_labels(tiny_data)
  assert len(exs) + exs.skipped_empty == tiny_data.num_users == exs.users_in_split
  for ex in exs:
    lab = labs[ex.user_index]
    assert (ex.liked, ex.disliked) == (lab.liked, lab.disliked)
    assert ex.targets == formats.format_target(lab.liked, lab.disliked)
    assert ex.user_id == int(tiny_data.user_ids[ex.user_index])
    assert ex.positions.shape == (10,)
    own = tiny_data.user_positions(ex.user_index)
    assert set(ex.positions.tolist()) <= set(own.tolist())


def test_splits_are_disjoint_and_cover_all(tiny_data):
  ids = {s: {e.user_id for e in build_examples(tiny_data, split=s, history_size=5,
                                               sampler="random")} for s in split.SPLITS}
  assert not ids["train"] & ids["test"] and not ids["train"] & ids["validation"]
  everything = {e.user_id for e in build_examples(tiny_data, split="all", history_size=5,
                                                  sampler="random")}
  assert ids["train"] | ids["validation"] | ids["test"] == everything
  for s, users in ids.items():
    assert all(split.user_split(u) == s for u in users)


def test_deterministic_and_seed_dependent(tiny_data):
  kw = dict(split="all", history_size=6, sampler="random")
  a = build_examples(tiny_data, seed=1, **kw)
  b = build_examples(tiny_data, seed=1, **kw)
  c = build_examples(tiny_data, seed=2, **kw)
  assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))
  assert any(not np.array_equal(x.positions, y.positions) for x, y in zip(a, c))


def test_empty_users_skipped_and_counted_or_kept(tiny_data):
  strict = LabelConfig(like_threshold=4.9, dislike_threshold=1.1)
  skipped = build_examples(tiny_data, split="all", history_size=5, sampler="recency",
                           label_config=strict)
  assert skipped.skipped_empty > 0
  assert len(skipped) + skipped.skipped_empty == tiny_data.num_users
  kept = build_examples(tiny_data, split="all", history_size=5, sampler="recency",
                        label_config=LabelConfig(like_threshold=4.9, dislike_threshold=1.1,
                                                 keep_empty=True))
  assert len(kept) == tiny_data.num_users and kept.skipped_empty == 0
  assert sum(e.targets == "Liked Genres: None. Not Liked Genres: None" for e in kept) == (
      skipped.skipped_empty)


def test_shown_label_source_uses_only_shown_items(tiny_data):
  cfg = LabelConfig(source="shown", keep_empty=True)
  for ex in build_examples(tiny_data, split="all", history_size=8, sampler="recency",
                           label_config=cfg):
    lab = labels.labels_for_positions(tiny_data, ex.positions, cfg)
    assert (ex.liked, ex.disliked) == (lab.liked, lab.disliked)


def test_bad_arguments(tiny_data):
  with pytest.raises(ValueError, match="valid samplers"):
    build_examples(tiny_data, split="train", history_size=5, sampler="nope")
  with pytest.raises(ValueError, match="history_size"):
    build_examples(tiny_data, split="train", history_size=0, sampler="recency")
  with pytest.raises(ValueError, match="unknown split"):
    build_examples(tiny_data, split="dev", history_size=5, sampler="recency")
  with pytest.raises(ValueError, match="resamples"):
    build_examples(tiny_data, split="train", history_size=5, sampler="recency", resamples=0)


def test_resamples_add_augmented_histories_with_the_users_target(tiny_data):
  one = build_examples(tiny_data, split="train", history_size=6, sampler="recency")
  four = build_examples(tiny_data, split="train", history_size=6, sampler="recency",
                        resamples=4)
  assert len(four) == 4 * len(one)
  for i, ex in enumerate(one):
    group = four[4 * i:4 * i + 4]
    assert {e.user_id for e in group} == {ex.user_id}
    assert {e.targets for e in group} == {ex.targets}
    np.testing.assert_array_equal(group[0].positions, ex.positions)  # copy 0 = the sampler's
  assert sum(not np.array_equal(a.positions, b.positions)
             for a, b in zip(four[0::4], four[1::4])) > len(one) // 2


def _copies_by_user(exs):
  out = {}
  for ex in exs:
    out.setdefault(ex.user_index, []).append(ex)
  return out


@pytest.mark.parametrize("source", ["window", "shown"])
def test_resample_labels_come_from_the_copys_window_or_shown_items(tiny_data, source):
  base = build_examples(tiny_data, split="train", history_size=6, sampler="recency", seed=2,
                        resamples=4)
  relabelled = build_examples(tiny_data, split="train", history_size=6, sampler="recency",
                              seed=2, resamples=4, resample_labels=source)
  by_user = _copies_by_user(relabelled)
  old = _copies_by_user(base)
  assert set(by_user) == set(old)  # a user keeps copy 0 whatever its copies' labels
  changed = 0
  for u, exs in by_user.items():
    assert exs[0].targets == old[u][0].targets  # copy 0 keeps the whole-history target
    np.testing.assert_array_equal(exs[0].positions, old[u][0].positions)
    expected = []  # (positions, label) of the copies kept, in copy order
    for k in range(1, 4):
      pos = samplers.resample("recency", tiny_data, u, 6, 2, k)
      window = samplers.resample_window(tiny_data, u, 6, 2, k)
      lab = labels.labels_for_positions(tiny_data, window if source == "window" else pos)
      if not lab.empty:  # an empty label drops the copy (counted in skipped_empty)
        expected.append((pos, lab))
    assert len(exs) == 1 + len(expected)
    for ex, (pos, lab) in zip(exs[1:], expected):
      np.testing.assert_array_equal(ex.positions, pos)
      assert (ex.liked, ex.disliked) == (lab.liked, lab.disliked)
      changed += ex.targets != exs[0].targets
  assert changed > 0  # the relabelling actually relabels
  assert len(relabelled) + relabelled.skipped_empty - base.skipped_empty == len(base)


def test_rationale_is_the_rule_on_the_shown_items_before_every_target(tiny_data):
  cfg = LabelConfig(min_genre_count=2)
  plain = build_examples(tiny_data, split="all", history_size=6, sampler="random", seed=1,
                         label_config=cfg, resamples=3, resample_labels="shown")
  exs = build_examples(tiny_data, split="all", history_size=6, sampler="random", seed=1,
                       label_config=cfg, resamples=3, resample_labels="shown", rationale=True)
  assert len(exs) == len(plain) and exs.skipped_empty == plain.skipped_empty
  listed = 0
  for ex, ref in zip(exs, plain):
    np.testing.assert_array_equal(ex.positions, ref.positions)
    assert (ex.liked, ex.disliked) == (ref.liked, ref.disliked)
    head, target = ex.targets.split(" Liked Genres: ", 1)
    assert "Liked Genres: " + target == ref.targets
    sums, counts = labels.genre_stats(tiny_data, ex.positions)
    want = [(g, sums[i] / counts[i]) for i, g in enumerate(labels.genres_lib.GENRES)
            if counts[i] >= 2]
    assert head == formats.format_rationale([g for g, _ in want], [m for _, m in want])
    listed += len(want)
  assert listed > 0


def test_whole_rationale_follows_the_rule_of_each_rows_labels(tiny_data):
  """Rows showing fewer than N items write ``Whole:`` and the label rule's genres, full rows
  ``Shown:`` and the shown rule's; labels and items are those of the plain rationale run."""
  tuned = LabelConfig(like_threshold=3.0, dislike_threshold=3.0, max_liked=5, max_disliked=5,
                      min_genre_count=1)
  kw = dict(split="train", history_size=30, sampler="recency", seed=2, resamples=4,
            resample_labels="shown", rationale=True, shown_label_config=tuned)
  plain = build_examples(tiny_data, **kw)
  exs = build_examples(tiny_data, whole_rationale=True, **kw)
  assert len(exs) == len(plain) > 0
  seen = {"Whole:": 0, "Shown:": 0}
  for ex, ref in zip(exs, plain):
    np.testing.assert_array_equal(ex.positions, ref.positions)
    assert (ex.liked, ex.disliked) == (ref.liked, ref.disliked)
    whole = len(ex.positions) < 30
    header = formats.rationale_header(ex.targets)
    assert header == ("Whole:" if whole else "Shown:") and ex.targets.startswith(header)
    seen[header] += 1
    rule = LabelConfig() if whole else tuned
    assert ex.targets.split(" Liked Genres: ")[0] == labels.rationale(
        tiny_data, ex.positions, rule, header=header)
    if not whole:
      assert ex.targets == ref.targets
  assert min(seen.values()) > 0
  with pytest.raises(ValueError, match="whole_rationale=True needs rationale=True"):
    build_examples(tiny_data, **dict(kw, rationale=False, whole_rationale=True))


def test_rationale_counts_write_each_genres_shown_count_and_change_nothing_else(tiny_data):
  tuned = LabelConfig(like_threshold=3.0, dislike_threshold=3.0, min_genre_count=2)
  kw = dict(split="train", history_size=30, sampler="recency", seed=2, resamples=3,
            resample_labels="shown", rationale=True, shown_label_config=tuned,
            whole_rationale=True)
  plain = build_examples(tiny_data, **kw)
  exs = build_examples(tiny_data, rationale_counts=True, **kw)
  assert len(exs) == len(plain) > 0
  written = 0
  for ex, ref in zip(exs, plain):
    np.testing.assert_array_equal(ex.positions, ref.positions)
    assert (ex.liked, ex.disliked) == (ref.liked, ref.disliked)
    assert formats.parse_rationale(ex.targets) == formats.parse_rationale(ref.targets)
    assert formats.rationale_header(ex.targets) == formats.rationale_header(ref.targets)
    sums, counts = labels.genre_stats(tiny_data, ex.positions)
    for name, (_, count) in formats.parse_rationale_counts(ex.targets).items():
      assert count == counts[labels.genres_lib.GENRE_INDEX[name]]
      written += 1
  assert written > 0
  with pytest.raises(ValueError, match="rationale_counts=True needs rationale=True"):
    build_examples(tiny_data, **dict(kw, rationale=False, whole_rationale=False),
                   rationale_counts=True)


def test_rating_ordered_rationale_ranks_genres_so_the_labels_are_its_ends(tiny_data):
  """With ``rationale_order='rating'`` the rationale lists the same genres and means, highest
  mean first, so shown labels are its first genres over the like threshold and its last ones
  under the dislike threshold."""
  cfg = LabelConfig(min_genre_count=2, source="shown")
  kw = dict(split="all", history_size=6, sampler="random", seed=1, label_config=cfg,
            rationale=True)
  canonical = build_examples(tiny_data, **kw)
  ranked = build_examples(tiny_data, rationale_order="rating", **kw)
  assert len(ranked) == len(canonical) > 0
  reordered = 0
  for ex, ref in zip(ranked, canonical):
    assert (ex.liked, ex.disliked) == (ref.liked, ref.disliked)
    got, want = formats.parse_rationale(ex.targets), formats.parse_rationale(ref.targets)
    assert got == want  # same genres and means
    assert list(want) == [g for g in labels.genres_lib.GENRES if g in want]
    means = list(got.values())
    assert means == sorted(means, reverse=True)
    reordered += list(got) != list(want)
    over = [g for g, m in got.items() if m > cfg.like_threshold]
    under = [g for g, m in got.items() if m < cfg.dislike_threshold]
    assert ex.liked == tuple(over[:cfg.max_liked])  # the rule's order, ties included
    assert ex.disliked == tuple(under[::-1][:cfg.max_disliked])
  assert reordered > 0
  with pytest.raises(ValueError, match="rationale_order='alphabetical'"):
    build_examples(tiny_data, rationale_order="alphabetical", **kw)
  with pytest.raises(ValueError, match="rationale order 'x'"):
    labels.rationale(tiny_data, ranked[0].positions, cfg, order="x")


def test_resample_labels_rejects_unknown_sources(tiny_data):
  with pytest.raises(ValueError, match="resample_labels='future'"):
    build_examples(tiny_data, split="train", history_size=5, sampler="recency", resamples=2,
                   resample_labels="future")


def test_resample_sampler_picks_the_copies_items_from_the_same_windows(tiny_data):
  base = build_examples(tiny_data, split="train", history_size=6, sampler="recency", seed=3,
                        resamples=4)
  mixed = build_examples(tiny_data, split="train", history_size=6, sampler="recency", seed=3,
                         resamples=4, resample_sampler="random")
  assert len(mixed) == len(base)
  differ = 0
  for a, b in zip(base, mixed):
    assert (a.user_index, a.targets) == (b.user_index, b.targets)
  for u, exs in _copies_by_user(mixed).items():
    np.testing.assert_array_equal(exs[0].positions, _copies_by_user(base)[u][0].positions)
    for k, ex in enumerate(exs[1:], 1):
      window = samplers.resample_window(tiny_data, u, 6, 3, k)
      np.testing.assert_array_equal(ex.positions, samplers.resample("random", tiny_data, u, 6, 3,
                                                                    k))
      assert set(ex.positions.tolist()) <= set(window.tolist())
      differ += not np.array_equal(ex.positions, window[-6:])  # recency would take the last 6
  assert differ > 0
  with pytest.raises(ValueError, match="unknown sampler 'newest'"):
    build_examples(tiny_data, split="train", history_size=5, sampler="recency", resamples=2,
                   resample_sampler="newest")


def test_shown_label_config_labels_full_shown_copies_and_picks_the_rationale_genres(tiny_data):
  """A tuned rule labels the augmented copies whose N items are all shown; shorter copies keep
  the label rule, copy 0 the whole-history target; the rationale lists genres by its count."""
  tuned = LabelConfig(like_threshold=3.0, dislike_threshold=3.0, max_liked=5, max_disliked=5,
                      min_genre_count=1)
  kw = dict(split="train", history_size=30, sampler="recency", seed=2, resamples=4,
            resample_labels="shown", rationale=True)
  base = _copies_by_user(build_examples(tiny_data, **kw))
  got = _copies_by_user(build_examples(tiny_data, shown_label_config=tuned, **kw))
  assert set(got) == set(base)
  changed, short = 0, 0
  for u, exs in got.items():
    lab0 = labels.user_labels(tiny_data)[u]
    assert (exs[0].liked, exs[0].disliked) == (lab0.liked, lab0.disliked)
    for ex in exs[1:]:
      rule = tuned if len(ex.positions) == 30 else LabelConfig()
      short += len(ex.positions) < 30
      lab = labels.labels_for_positions(tiny_data, ex.positions, rule)
      assert (ex.liked, ex.disliked) == (lab.liked, lab.disliked)
      changed += lab != labels.labels_for_positions(tiny_data, ex.positions)
    for ex in exs:
      sums, counts = labels.genre_stats(tiny_data, ex.positions)
      assert set(formats.parse_rationale(ex.targets)) == {
          g for i, g in enumerate(labels.genres_lib.GENRES) if counts[i] >= 1}
  assert changed > 0 and short > 0  # both rules label some copies
  # without resample_labels='shown' the tuned rule labels nothing, and only the rationale moves
  window = dict(kw, resample_labels="window")
  plain = build_examples(tiny_data, **window)
  moved = build_examples(tiny_data, shown_label_config=tuned, **window)
  assert [(e.liked, e.disliked) for e in moved] == [(e.liked, e.disliked) for e in plain]
  assert sum(a.targets != b.targets for a, b in zip(moved, plain)) > 0
