"""Verbaliser: round trip of targets and robustness to malformed generations."""

import random

import numpy as np
import pytest

from persoma.data import formats, genres
from persoma.metrics import verbalizer


def test_round_trip_random_targets():
  rng = random.Random(0)
  for _ in range(300):
    picked = rng.sample(genres.GENRES, rng.randint(0, 6))
    k = rng.randint(0, len(picked))
    liked, disliked = tuple(picked[:k][:3]), tuple(picked[k:][:3])
    p = verbalizer.parse(formats.format_target(liked, disliked))
    assert (p.liked, p.disliked) == (liked, disliked)
    assert p.unknown == () and p.repeats == 0 and p.missing_sections == 0


@pytest.mark.parametrize("text,liked,disliked,unknown,repeats,missing", [
    ("liked genres: action, COMEDY. not liked genres: children's", ("Action", "Comedy"),
     ("Children",), 0, 0, 0),
    ("Liked Genres: Action, Spaceships. Not Liked Genres: None", ("Action",), (), 1, 0, 0),
    ("Liked Genres: Drama, Drama, Drama", ("Drama",), (), 0, 2, 1),
    ("Not Liked Genres: Horror and War", (), ("Horror", "War"), 0, 0, 1),
    ("Not Liked Genres: Horror. Liked Genres: Comedy", ("Comedy",), ("Horror",), 0, 0, 0),
    ("I think they like movies", (), (), 0, 0, 2),
    ("", (), (), 0, 0, 2),
    ("Liked Genres: Sci-Fi; Film Noir | IMAX. Disliked Genres: Musical.",
     ("Sci-Fi", "Film-Noir", "IMAX"), ("Musical",), 0, 0, 0),
    ("Liked Genres: Liked Genres: Action. Not Liked Genres:", ("Action",), (), 0, 0, 0),
])
def test_malformed_cases(text, liked, disliked, unknown, repeats, missing):
  p = verbalizer.parse(text)
  assert p.liked == liked and p.disliked == disliked
  assert len(p.unknown) >= unknown if unknown else p.unknown == ()
  assert p.repeats == repeats and p.missing_sections == missing


def test_conflicting_sides_counted_and_resolved():
  p = verbalizer.parse("Liked Genres: War, Drama. Not Liked Genres: War, Horror")
  assert p.liked == ("War", "Drama") and p.disliked == ("Horror",) and p.conflicts == 1


def test_garbage_never_raises():
  rng = np.random.default_rng(0)
  alphabet = list("Liked Genres:Not ,.;|and\n") + list(" ActionComedyWar") + ["\x00", "é"]
  for _ in range(500):
    text = "".join(rng.choice(alphabet, size=rng.integers(0, 80)))
    p = verbalizer.parse(text)
    assert set(p.liked) <= set(genres.GENRES) and set(p.disliked) <= set(genres.GENRES)
  assert verbalizer.parse(None).missing_sections == 2  # type: ignore[arg-type]


def test_indicators_and_counts():
  y, counts = verbalizer.parse_many(["Liked Genres: War. Not Liked Genres: Action", "junk",
                                     "Liked Genres: War, Foo. Not Liked Genres: None"])
  assert y.shape == (3, 38)
  war, action = genres.GENRE_INDEX["War"], genres.GENRE_INDEX["Action"]
  assert y[0, war] == 1 and y[0, 19 + action] == 1 and y[0].sum() == 2
  assert y[1].sum() == 0 and y[2].sum() == 1
  assert counts == {"unknown_genres": 1, "repeats": 0, "conflicts": 0, "missing_sections": 2,
                    "unparseable": 1}
