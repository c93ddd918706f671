"""Settings: environment parsing, validation errors, and secrets that never print."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentfleet.settings import Settings


def test_env_overrides_and_url_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLEET_RPC_URLS", "http://a:1, http://b:2,")
    monkeypatch.setenv("AGENTFLEET_CONFIRMATIONS", "3")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    settings = Settings()
    assert settings.rpc_urls == ["http://a:1", "http://b:2"]
    assert settings.confirmations == 3
    assert settings.openai_base_url == "http://127.0.0.1:9/v1"


def test_secrets_never_appear_in_repr_or_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-123")
    monkeypatch.setenv("AGENTFLEET_MNEMONIC", "word " * 11 + "secretword")
    monkeypatch.setenv("AGENTFLEET_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    settings = Settings()
    text = repr(settings) + str(settings) + str(settings.model_dump()) + settings.model_dump_json()
    for secret in ("sk-very-secret-123", "secretword", "hunter2"):
        assert secret not in text
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-very-secret-123"


@pytest.mark.parametrize(
    ("name", "value"),
    [("AGENTFLEET_CONFIRMATIONS", "-1"), ("AGENTFLEET_LOG_FORMAT", "xml"), ("AGENTFLEET_RPC_URLS", " , ")],
)
def test_bad_values_are_rejected_with_the_setting_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert name.removeprefix("AGENTFLEET_").lower() in str(info.value)


def test_json_log_format_emits_one_json_object_per_line() -> None:
    import json
    import subprocess
    import sys

    code = "import logging; from agentfleet.logs import configure_logging; from agentfleet.settings import Settings; "
    code += "configure_logging(Settings(log_format='json')); logging.getLogger('x').warning('hello %s', 42)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["message"] == "hello 42" and entry["level"] == "WARNING" and entry["logger"] == "x"


def test_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = [f"AGENTFLEET_{name.upper()}", *(str(c) for c in getattr(alias, "choices", []))]
        if not any(f"`{n}`" in readme for n in names):
            missing.append(names[0])
    assert missing == []
