"""Replies of an OpenAI-compatible server, for the local servers tests start (pytest-httpserver)."""

from __future__ import annotations

import json
from typing import Any


def completion(
    content: str | dict[str, Any], *, prompt_tokens: int = 100, completion_tokens: int = 20
) -> dict[str, Any]:
    """A ``chat.completion`` reply whose message is ``content`` (a dict is sent as its JSON text)."""
    text = content if isinstance(content, str) else json.dumps(content)
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
