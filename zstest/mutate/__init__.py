"""Mutation testing: plant one-line bugs in C source and count the ones the tests catch.

generate.py makes the mutants (pure) on the lines series/changed.py finds a series adds, run.py
builds, boots and judges each mutant (mutate.json, the per-patch/per-function summary).
"""

from .generate import OPERATORS, Mutant, find_functions, generate_mutants

__all__ = ["OPERATORS", "Mutant", "find_functions", "generate_mutants"]
