"""Fixtures of this stage (a pytest plugin loaded by conftest.py)."""
