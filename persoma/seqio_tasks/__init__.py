"""persoma."""
