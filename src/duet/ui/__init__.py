"""Duet's web page: `duet ui`."""
