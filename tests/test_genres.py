"""Canonical genres and normalisation across MovieLens releases."""

import numpy as np
import pytest

from persoma.data import genres


def test_nineteen_genres_in_fixed_order():
  assert len(genres.GENRES) == 19
  assert genres.GENRES[0] == "Action" and genres.GENRES[-1] == "Western"
  assert list(genres.GENRES) == sorted(genres.GENRES, key=str.lower)
  assert "IMAX" in genres.GENRES and "Children" in genres.GENRES


def test_classes_are_liked_then_disliked():
  assert len(genres.CLASSES) == 38
  assert genres.CLASSES[:19] == tuple(f"liked:{g}" for g in genres.GENRES)
  assert genres.CLASSES[19:] == tuple(f"disliked:{g}" for g in genres.GENRES)


@pytest.mark.parametrize("raw,canon", [
    ("Children's", "Children"), ("children", "Children"), ("  sci-fi ", "Sci-Fi"),
    ("SCI-FI", "Sci-Fi"), ("Film Noir", "Film-Noir"), ("film-noir", "Film-Noir"),
    ("(no genres listed)", None), ("unknown", None), ("Cooking", None), ("", None),
])
def test_normalize_genre(raw, canon):
  assert genres.normalize_genre(raw) == canon


def test_every_canonical_name_maps_to_itself():
  for g in genres.GENRES:
    assert genres.normalize_genre(g) == g
    assert genres.normalize_genre(g.upper()) == g


def test_parse_field_dedups_and_orders():
  assert genres.parse_genre_field("Western|Children's|Children|Action") == (
      "Action", "Children", "Western")
  assert genres.parse_genre_field("(no genres listed)") == ()
  assert genres.parse_genre_field("") == ()


def test_genre_matrix():
  m = genres.genre_matrix([("Action", "War"), (), ("Western",)])
  assert m.shape == (3, 19) and m.dtype == bool
  assert m.sum(axis=1).tolist() == [2, 0, 1]
  assert m[0, genres.GENRE_INDEX["War"]] and m[2, 18]
  assert not np.any(m[1])
