"""Text-to-speech: Festival(), engines, the speech cache."""
