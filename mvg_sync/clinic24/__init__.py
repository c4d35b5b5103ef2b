"""clinic24."""
