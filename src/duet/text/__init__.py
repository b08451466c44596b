"""Text: Ovi prompt parsing and the frozen text encoders."""
