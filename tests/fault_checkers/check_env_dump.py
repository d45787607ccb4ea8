"""Prints its whole environment as one JSON object (for the secrets-in-children tests)."""
import json
import os

print(json.dumps(dict(os.environ)))
