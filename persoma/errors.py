"""Errors persoma raises for a configuration it refuses.

`ConfigError` marks a bad configured value (a gin macro or a config dataclass field) found by
persoma's own validation. It is a `ValueError`, so callers catching `ValueError` still see it;
`persoma-train` prints it as one `error: ...` line instead of a traceback.
"""


class ConfigError(ValueError):
  """A configured value persoma refuses; the message names the field (and its gin macro)."""


def one_line(error: BaseException) -> str:
  """`error`'s own message without the `In call to configurable ...` lines gin appends."""
  return str(error).split("\n  In call to configurable")[0].strip()
