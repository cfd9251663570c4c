"""Process-wide runtime state of a worker: its settings, set once by ``configure``."""

from __future__ import annotations

from settings import Settings

_settings: Settings | None = None


def set_settings(settings: Settings) -> None:
    global _settings
    _settings = settings


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def current() -> Settings | None:
    """The settings set so far, or None before the first configure()."""
    return _settings
