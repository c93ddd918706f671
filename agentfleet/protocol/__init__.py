"""The protocol every fleet process speaks, and the Celery app that carries it.

``routing``: Celery task names and queues; ``status``: the contract's task statuses; ``keys``: the shared
Redis keys; ``limits``: the contracts' limits; ``app``/``celeryconfig``: the Celery application. The
listener, the workers and the trainer import this package (and the rest of the core), never each other.
"""
