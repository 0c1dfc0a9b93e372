"""Item text formats, target string and text-prompting rendering."""

import pytest

from persoma.data import formats


def test_uem_three_texts():
  texts = formats.item_texts("uem", "Heat (1995)", ("Action", "Crime"), "Cops and robbers.", 4.0)
  assert texts == ("The movie Heat (1995) is listed with genres Action, Crime",
                   "The movie is rated with 4 stars", "Cops and robbers.")


@pytest.mark.parametrize("fmt", ["complete", "title_score", "description_score"])
def test_single_text_formats(fmt):
  texts = formats.item_texts(fmt, "Heat (1995)", ("Action",), "Cops and robbers.", 3.5)
  assert len(texts) == 1 == formats.NUM_TEXTS[fmt]
  text = texts[0]
  assert "3.5 stars" in text
  assert ("Heat (1995)" in text) == (fmt != "description_score")
  assert ("Cops and robbers." in text) == (fmt != "title_score")


def test_missing_description_is_explicit():
  assert formats.item_texts("uem", "X", (), "", 2)[2] == formats.NO_DESCRIPTION
  assert formats.NO_DESCRIPTION in formats.item_texts("complete", "X", (), "  ", 2)[0]


def test_unknown_format_lists_valid():
  with pytest.raises(ValueError, match="uem, complete, title_score, description_score"):
    formats.item_texts("fancy", "X", (), "", 3)


def test_format_target():
  assert formats.format_target(("Action", "Comedy"), ("Romance",)) == (
      "Liked Genres: Action, Comedy. Not Liked Genres: Romance")
  assert formats.format_target((), ("War",)) == "Liked Genres: None. Not Liked Genres: War"
  assert formats.format_target(("War",), ()) == "Liked Genres: War. Not Liked Genres: None"


def test_format_rationale_and_the_parser_reads_past_it():
  from persoma.metrics import verbalizer
  text = formats.format_rationale(("Action", "Film-Noir"), (3.754, 2.0))
  assert text == "Shown: Action 3.75, Film-Noir 2.00."
  assert formats.format_rationale((), ()) == "Shown: None."
  with pytest.raises(ValueError):
    formats.format_rationale(("Action",), ())
  assert formats.parse_rationale(text) == {"Action": 3.75, "Film-Noir": 2.0}
  assert formats.parse_rationale("Shown: None. Liked Genres: None") == {}
  assert formats.parse_rationale("Liked Genres: War. Not Liked Genres: None") is None
  assert formats.parse_rationale("Shown: Action 3.5, Drama, Sci-Fi x. Liked") == {"Action": 3.5}
  parsed = verbalizer.parse(f"{text} {formats.format_target(('Comedy',), ('War',))}")
  assert (parsed.liked, parsed.disliked, parsed.unknown) == (("Comedy",), ("War",), ())


def test_rationale_with_counts_writes_each_count_before_its_mean_and_parses_both():
  from persoma.metrics import verbalizer
  text = formats.format_rationale(("Action", "Film-Noir"), (3.754, 2.0), counts=(4, 12))
  assert text == "Shown: Action 4 3.75, Film-Noir 12 2.00."
  with pytest.raises(ValueError):
    formats.format_rationale(("Action", "Drama"), (3.0, 4.0), counts=(4,))
  assert formats.parse_rationale_counts(text) == {"Action": (3.75, 4), "Film-Noir": (2.0, 12)}
  assert formats.parse_rationale(text) == {"Action": 3.75, "Film-Noir": 2.0}
  # entries without a count, or with a count that is not a whole number, keep their mean
  assert formats.parse_rationale_counts("Shown: Action 3.5, Drama 2.5 4.0, War x 3.0.") == {
      "Action": (3.5, None), "Drama 2.5": (4.0, None), "War x": (3.0, None)}
  assert formats.parse_rationale_counts("Liked Genres: War") is None
  parsed = verbalizer.parse(f"{text} {formats.format_target(('Comedy',), ('War',))}")
  assert (parsed.liked, parsed.disliked, parsed.unknown) == (("Comedy",), ("War",), ())


def test_whole_rationale_header_is_written_and_parsed():
  from persoma.metrics import verbalizer
  text = formats.format_rationale(("Drama",), (4.0,), formats.WHOLE_RATIONALE_HEADER)
  assert text == "Whole: Drama 4.00." and formats.rationale_header(text) == "Whole:"
  assert formats.parse_rationale(f"{text} Liked Genres: Drama") == {"Drama": 4.0}
  assert formats.rationale_header("Shown: None. Whole: Drama 4.00.") == "Shown:"
  assert formats.rationale_header("Liked Genres: Drama") is None
  with pytest.raises(ValueError, match="rationale header 'All:'"):
    formats.format_rationale(("Drama",), (4.0,), "All:")
  parsed = verbalizer.parse(f"{text} {formats.format_target(('Drama',), ())}")
  assert (parsed.liked, parsed.disliked, parsed.unknown) == (("Drama",), (), ())


def test_render_history_text_lines():
  text = formats.render_history_text("complete", ["A (1990)", "B (1991)"], [(), ("War",)],
                                     ["Plot a.", ""], [5.0, 2.5])
  lines = text.split("\n")
  assert lines[0] == formats.TASK_INSTRUCTION
  assert lines[1] == "Title: A (1990), Description: Plot a., Rating: 5"
  assert lines[2] == f"Title: B (1991), Description: {formats.NO_DESCRIPTION}, Rating: 2.5"
  assert "Genres: War" in formats.history_line("uem", "B", ("War",), "", 1)
  assert "Description" not in formats.history_line("title_score", "B", (), "d", 1)
  assert "Title" not in formats.history_line("description_score", "B", (), "d", 1)
  with pytest.raises(ValueError, match="equal lengths"):
    formats.render_history_text("complete", ["A"], [], [], [])


def test_history_text_from_data(tiny_data):
  pos = tiny_data.user_positions(0)[:4]
  text = formats.history_text(tiny_data, pos, "complete", instruction=None)
  lines = text.split("\n")
  assert len(lines) == 4
  first = tiny_data.catalog.titles[tiny_data.ratings.movie_idx[pos[0]]]
  assert lines[0].startswith(f"Title: {first},")
  assert len(formats.positions_texts(tiny_data, pos, "uem")[0]) == 3
