"""Track AI benchmark harness: ``python -m bench [names...] [--quick] [--json out.json]``.

Benchmarks live in :mod:`bench.suites` (one module per area) and register themselves with
:func:`bench.registry.benchmark`; every figure is a median of several runs in one process.
"""
