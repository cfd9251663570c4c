"""JSON out: ISO 8601 datetimes and a canonical form for comparing documents."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from flask.json.provider import DefaultJSONProvider


class CanvasflowJSONProvider(DefaultJSONProvider):
    """Flask's provider, but datetimes as ISO 8601 (Flask's default is an HTTP date)."""

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        """Datetimes and dates as ISO 8601; everything else as Flask does."""
        if isinstance(o, datetime | date):
            return o.isoformat()
        return DefaultJSONProvider.default(o)


def canonical_json(document: Any) -> str:
    """One spelling per JSON value, so two definitions compare equal iff they mean the same."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
