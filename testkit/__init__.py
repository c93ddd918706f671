"""Test support shared by ``tests/`` and ``bench/``: deployed markets on either chain, a running fleet, canned
LLM replies, listener helpers and one polling helper (``testkit.wait.wait_until``). Never imported by the
fleet itself."""
