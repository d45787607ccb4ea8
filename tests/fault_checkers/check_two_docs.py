"""Prints two JSON documents."""
print('{"a": 1}')
print('{"b": 2}')
