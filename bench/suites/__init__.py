"""Benchmark suites: every module here is imported by ``python -m bench`` and registers itself.

Later issues add ``ingestion.py``, ``matcher.py``, ``dispatcher.py`` next to the baselines.
"""
