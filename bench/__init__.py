"""Benchmarks, outside the test suite: each prints its figure next to a baseline measured in the same run
(bare Celery, raw RPC, raw Redis), so machine noise cancels out in the ratio."""
