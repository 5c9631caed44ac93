"""The publish route's one-pass parser (`parse_publication`) accepts exactly what the request's model
and then its event's model accept, and makes the same event of it; what it refuses is answered by
those two (tests/integration/test_publish_reach.py checks the replies)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from agent_portal.errors import ValidationFailed
from agent_portal.gateway.base import strict_parse
from agent_portal.gateway.namespaces.orchestrator import OrchestratorNamespace, parse_publication
from agent_portal.protocol.client_events import PublishRequest
from agent_portal.protocol.registry import PUBLISHABLE_EVENTS, SERVER_EVENTS
from samples import sample

EVENTS = sorted(PUBLISHABLE_EVENTS)


def two_steps(payload: Any) -> BaseModel | None:
    """The request, then its data: what every publish went through before the one-pass parser."""
    try:
        return OrchestratorNamespace._event_of(strict_parse(PublishRequest, payload))  # type: ignore[arg-type]
    except (ValidationError, ValidationFailed):
        return None


def one_pass(payload: Any) -> BaseModel | None:
    try:
        publication = parse_publication(payload)
    except ValidationError:
        return None
    assert publication.event == payload["event"]
    return publication.data


@pytest.mark.parametrize("event", EVENTS)
def test_every_publishable_event_is_parsed_in_one_pass(event: str) -> None:
    payload = {"event": event, "data": sample(event, "p")}
    parsed = one_pass(payload)
    assert type(parsed) is PUBLISHABLE_EVENTS[event]
    assert parsed == two_steps(payload)


@pytest.mark.parametrize(
    "payload",
    [
        {"event": "user_action", "data": {}},  # a server event, not a publishable one
        {"event": "", "data": sample("test_output", "p")},
        {"event": "test_output"},
        {"event": "test_output", "data": sample("test_output", "p"), "extra": 1},
        {"event": "test_output", "data": sample("test_output", "p") | {"sequence_number": "5"}},
        {"event": "test_output", "data": sample("test_output", "p") | {"sequence_number": True}},
        {"event": "test_output", "data": sample("test_output", "p") | {"sequence_number": 0}},
        {"event": "test_output", "data": sample("test_output", "p") | {"content": float("nan")}},
        {"event": "system_metrics", "data": sample("system_metrics", "p") | {"cpu_usage": float("inf")}},
        {"event": "state_change", "data": sample("state_change", "p") | {"new_state": "DONE?"}},
        {"event": "task_update", "data": sample("task_update", "p") | {"progress": 140}},
        {"event": "test_output", "data": [sample("test_output", "p")]},
        {"event": 7, "data": {}},
        ["test_output", sample("test_output", "p")],
    ],
)
def test_what_the_two_steps_refuse_the_one_pass_refuses(payload: Any) -> None:
    assert two_steps(payload) is None
    with pytest.raises(ValidationError):
        parse_publication(payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(event=st.sampled_from(EVENTS), draw=st.data())
def test_one_pass_and_two_steps_agree_on_any_change_to_a_valid_publication(
    event: str, draw: st.DataObject
) -> None:
    data = sample(event, "p")
    payload: dict[str, Any] = {"event": event, "data": data}
    change = draw.draw(st.sampled_from(["set", "drop", "add", "event", "data", "envelope"]))
    if change == "set":
        data[draw.draw(st.sampled_from(sorted(data)))] = draw.draw(JSON)
    elif change == "drop":
        del data[draw.draw(st.sampled_from(sorted(data)))]
    elif change == "add":
        data[draw.draw(st.text(max_size=12))] = draw.draw(JSON)
    elif change == "event":
        payload["event"] = draw.draw(st.sampled_from(sorted(SERVER_EVENTS)) | JSON)
    elif change == "data":
        payload["data"] = draw.draw(JSON)
    else:
        payload[draw.draw(st.text(max_size=8))] = draw.draw(JSON)
    assert one_pass(payload) == two_steps(payload)
