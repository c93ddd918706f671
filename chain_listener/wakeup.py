"""Optional WebSocket newHeads subscription that wakes the listener the moment a block arrives.

Why only a wake-up: the HTTP poll stays the source of truth (it checks hashes, confirmations and the
checkpoint); the subscription just cuts the idle wait, so a dropped socket costs latency, never events.
The socket runs in its own thread with its own asyncio loop and reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from web3 import AsyncWeb3, WebSocketProvider
from web3.utils.subscriptions import NewHeadsSubscription

log = logging.getLogger(__name__)


class HeadWakeup:
    def __init__(self, ws_url: str, wake: threading.Event, *, max_backoff: float = 5.0) -> None:
        self.ws_url = ws_url
        self.wake = wake
        self.max_backoff = max_backoff
        self.heads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="newheads", daemon=True)

    def start(self) -> HeadWakeup:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                await self._subscribe()
                backoff = 0.1
            except Exception as exc:  # socket closed, node restarted: poll keeps working meanwhile
                log.warning("newHeads subscription lost (%s); reconnecting in %.1f s", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)

    async def _subscribe(self) -> None:
        async def on_head(_context: Any) -> None:
            self.heads += 1
            self.wake.set()

        provider = WebSocketProvider(self.ws_url, silence_listener_task_exceptions=True)
        async with AsyncWeb3(provider) as w3:
            await w3.subscription_manager.subscribe([NewHeadsSubscription(label="wakeup", handler=on_head)])
            task = asyncio.create_task(w3.subscription_manager.handle_subscriptions(run_forever=True))
            while not self._stop.is_set() and not task.done():
                await asyncio.sleep(0.1)
            task.cancel()
