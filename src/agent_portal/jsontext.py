"""Compact JSON text, written by orjson wherever its text is the stdlib's, else by the stdlib.

Used for Socket.IO packets (`gateway.engine.PacketJson`) and for the JSON columns of the SQL store
(the recovery log writes three per broadcast). The stdlib took 1.8 us to encode an ack's reply,
orjson 0.2 (docs/performance.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

COMPACT_ARGS = {"separators": (",", ":")}
_COMPACT_ENCODER = json.JSONEncoder(**COMPACT_ARGS)  # type: ignore[arg-type]

# Datetimes and dataclasses, which the stdlib refuses, stay refused; subclasses of str, int,
# dict and list go to the stdlib too, which writes them as it did. (orjson still writes UUIDs
# and enums, as their value, where the stdlib raised TypeError.)
ORJSON_AS_STDLIB = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def compact_dumps(obj: Any) -> str:
    """`json.dumps(obj, separators=(",", ":"))`, except that NaN and infinities are written as
    `null` (as Node's JSON.stringify does) rather than as the `NaN` no JSON parser takes, and text
    beyond ASCII as UTF-8 rather than as \\u escapes. What orjson refuses (dict keys that are not
    strings, integers past 64 bits, lone surrogates) the stdlib writes, or refuses, as before."""
    try:
        return orjson.dumps(obj, option=ORJSON_AS_STDLIB).decode()
    except TypeError:
        return _COMPACT_ENCODER.encode(obj)


def any_float(data: Any, test: Callable[[float], bool]) -> bool:
    """Whether a float in decoded JSON (lists, dicts, scalars) passes `test`.

    A walk of the data, not a scan of the text: a regular expression looking for 19 digits in a row
    took four times as long as orjson's whole parse (docs/performance.md)."""
    pending = [data]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is list:
            pending.extend(item)
        elif kind is dict:
            pending.extend(item.values())
        elif kind is float and test(item):
            return True
    return False
