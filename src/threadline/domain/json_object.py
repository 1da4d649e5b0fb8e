"""The one alias for a JSON object held as a dict (tool definitions, content parts, step details)."""

from typing import Any

JsonObject = dict[str, Any]
