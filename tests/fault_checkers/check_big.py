"""Prints 2 MB: over the 1 MiB stdout cap."""
import sys

sys.stdout.write("[" + ",".join(["1"] * 1_000_000) + "]")
