"""RFC 6570 simple string expansion, the only URI template form the DSL supports."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

__all__ = ["expand"]

_VARIABLE = re.compile(r"\{([^{}]+)\}")


def expand(template: str, data: Any) -> str:
    """Replace each ``{name}`` with the top-level property ``name`` of ``data``, URL-encoded.

    Missing names become empty strings; objects and arrays raise ValueError (the spec asks
    for an expression error). ``{pet.id}`` reads the property named ``pet.id``, verbatim.
    """
    values = data if isinstance(data, dict) else {}

    def one(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        value = values.get(name)
        if value is None:
            return ""
        if isinstance(value, dict | list):
            raise ValueError(
                f"URI template variable {{{name}}} is a {type(value).__name__}, not a scalar"
            )
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        return quote(text, safe="")

    return _VARIABLE.sub(one, template)
