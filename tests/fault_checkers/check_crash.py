"""Crashes with a traceback and a non-zero exit."""
raise RuntimeError("checker blew up on purpose")
