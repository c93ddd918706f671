"""The app shell: what people run — the ``agentfleet`` CLI, the embedded demo, ``agentfleet up``, the contract
walkthrough and the local services they start (redis-server, anvil). It sits above everything; nothing in the
core or the processes imports it."""
