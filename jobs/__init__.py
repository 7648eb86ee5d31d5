"""Entrypoints for ``python -m jobs.X`` and ``ray job submit``: parse, build, run, close."""
