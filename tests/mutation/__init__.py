"""Mutation testing of impl/ and reference/: ``python -m tests.mutation.run`` (see run.py)."""
