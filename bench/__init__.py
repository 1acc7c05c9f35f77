"""The proxy-layer benchmark (issue 4): `bench/run` or `python -m bench`. Never part of
the test suite; it prints figures and writes bench/results/, it asserts nothing."""
