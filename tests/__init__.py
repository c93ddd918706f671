"""The test suite: real redis-server, anvil or py-evm, Celery workers and the openai client against local
servers; helpers it shares with the benchmarks live in ``testkit``."""
