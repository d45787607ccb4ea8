"""A well-formed signal with price 0 (the original's failed-fetch value)."""
import json
import sys

print(json.dumps({"strategy": sys.argv[1], "symbol": sys.argv[2], "timeframe": sys.argv[3], "signal": 1,
                  "price": 0, "indicators": {}, "timestamp": "2026-01-01T00:00:00Z"}))
