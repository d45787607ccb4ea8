"""Exit 0 but the document carries an error field."""
import json
import sys

print(json.dumps({"strategy": sys.argv[1], "symbol": sys.argv[2], "timeframe": sys.argv[3], "signal": 1,
                  "price": 100.0, "indicators": {}, "timestamp": "2026-01-01T00:00:00Z",
                  "error": "exchange said no"}))
