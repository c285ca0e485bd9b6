"""The skiff command line: a client of the API, nothing else (plus `skiff up`, which starts it)."""
