"""strict_parse (gateway/base.py): JSON's types, no coercion, and what is not JSON refused, whichever
encoder writes the text it validates."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from agent_portal.gateway.base import strict_parse
from agent_portal.protocol.client_events import GetHistoryRequest, ResolveApprovalRequest


class Anything(BaseModel):
    value: object = None


def test_what_json_holds_is_taken_as_it_is() -> None:
    parsed = strict_parse(ResolveApprovalRequest, {"request_id": "r1", "approved": True, "comment": "é ✓"})
    assert parsed.model_dump(exclude_none=True) == {"request_id": "r1", "approved": True, "comment": "é ✓"}
    history = strict_parse(GetHistoryRequest, {"before": "2026-12-07T12:00:00.000Z", "limit": 5})
    assert isinstance(history, GetHistoryRequest) and history.before == datetime(2026, 12, 7, 12, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_no_coercion(value: object) -> None:
    with pytest.raises(ValidationError):
        strict_parse(ResolveApprovalRequest, {"request_id": "r1", "approved": value})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_not_json_even_where_null_is_allowed(bad: float) -> None:
    # orjson would write them as null, which an optional field takes: the payload is refused whole
    with pytest.raises(ValidationError):
        strict_parse(Anything, {"value": [1, {"x": bad}]})
    assert strict_parse(Anything, {"value": [1, {"x": None}]}).model_dump() == {"value": [1, {"x": None}]}


def test_what_only_the_stdlib_writes_is_written_as_it_did_and_what_json_cannot_hold_is_refused() -> None:
    big = 2**70  # orjson refuses integers past 64 bits
    assert strict_parse(Anything, {"value": big}).model_dump() == {"value": big}
    assert strict_parse(Anything, {"value": {1: "int key"}}).model_dump() == {"value": {"1": "int key"}}
    for not_json in (datetime(2026, 12, 7, tzinfo=UTC), object()):  # orjson would write a datetime
        with pytest.raises(ValidationError):
            strict_parse(Anything, {"value": not_json})
