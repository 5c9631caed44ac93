"""Renders an orchestrator result as a chat card (`EmbedData`) and a plain-text answer."""

from __future__ import annotations

import json
from typing import Any

from agent_portal.protocol.common import EmbedData, EmbedField

SUCCESS = "#2e7d32"
FAILURE = "#c62828"
_HEADLINE_KEYS = ("message", "error", "hint", "next_step", "success")


def _value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value) or "—"
    else:
        text = json.dumps(value, default=str, separators=(", ", ": "))
    return text if len(text) <= 1000 else text[:997] + "..."


def render(command: str, result: dict[str, Any]) -> tuple[str, EmbedData]:
    ok = bool(result.get("success"))
    headline = str(result.get("message") or result.get("error") or ("Done" if ok else "Failed"))
    fields: list[EmbedField] = []
    if not ok and result.get("hint"):
        fields.append(EmbedField(name="Hint", value=_value(result["hint"])))
    if result.get("next_step"):
        fields.append(EmbedField(name="Next step", value=_value(result["next_step"])))
    for key, value in result.items():
        if key in _HEADLINE_KEYS or value is None or key == "mermaid_diagram":
            continue
        fields.append(EmbedField(name=key.replace("_", " ").capitalize(), value=_value(value), inline=True))
    text = headline
    if not ok and result.get("hint"):
        text += f"\nHint: {result['hint']}"
    if result.get("next_step"):
        text += f"\nNext: {result['next_step']}"
    footer = "demo agents" if result.get("demo") else None
    embed = EmbedData(
        title=command,
        description=headline,
        color=SUCCESS if ok else FAILURE,
        fields=fields[:25],
        footer=footer,
    )
    return text, embed
