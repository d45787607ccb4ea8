"""Checker scripts: each is run as its own process, prints one JSON document on
stdout and exits. They hold no state. See REFERENCE section 3."""
