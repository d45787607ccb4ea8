"""Exit 0, but prints something that is not JSON."""
print("Signal: BUY!!! <html>not json</html>")
