"""Checker scripts: each is run as its own process, prints one JSON document on
stdout and exits. They hold no state. How to run them by hand, and what they
print: README.md, "Checkers by hand"."""
