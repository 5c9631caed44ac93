"""PortalPacket's codec (gateway/engine.py) gives python-socketio's answers, only faster."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from engineio import json as eio_json
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio import packet as sio_packet

from agent_portal.gateway.engine import PacketJson, PortalPacket, parse_event

SAMPLES: list[Any] = [
    None,
    0,
    "text",
    b"raw",
    bytearray(b"raw"),
    [],
    {},
    ["event", {"a": [1, 2, {"b": b"deep"}]}],
    ["event", {"a": [1, 2, {"b": "not binary"}]}, None, 1.5, True],
    {"k": bytearray(b"x")},
    ("tuple", b"inside"),  # the library does not look into tuples; neither do we
    [[[[[[b"nested"]]]]]],
    ["é", "\u2028", {"emoji": "\U0001f600"}],
]


@pytest.mark.parametrize("data", SAMPLES, ids=repr)
def test_binary_detection_matches_the_library(data: Any) -> None:
    assert PortalPacket.data_is_binary(data) is sio_packet.Packet.data_is_binary(data)


@pytest.mark.parametrize("data", [s for s in SAMPLES if not sio_packet.Packet.data_is_binary(s)], ids=repr)
def test_encoding_matches_the_library(data: Any) -> None:
    for kind in (sio_packet.EVENT, sio_packet.ACK):
        try:
            theirs = sio_packet.Packet(kind, data=data, namespace="/n", id=7).encode()
        except TypeError:  # bytes inside a tuple: not JSON, and not found as binary
            with pytest.raises(TypeError):
                PortalPacket(kind, data=data, namespace="/n", id=7).encode()
            continue
        ours = PortalPacket(kind, data=data, namespace="/n", id=7).encode()
        if ours.isascii():
            assert ours == theirs
        else:  # beyond ASCII we send UTF-8 where the library sends \u escapes: the same JSON
            assert ours[:5] == theirs[:5] and json.loads(ours[5:]) == json.loads(theirs[5:])


@pytest.mark.parametrize(
    "text",
    ['["e",1,-2,3.5e10,{"a":null}]', '["big",' + "9" * 100 + "]", '"\\u00e9"', "[1e400]", "[NaN]"],
)
def test_decoding_matches_the_library(text: str) -> None:
    assert PacketJson.loads(text) == eio_json.loads(text) or text == "[NaN]"


@pytest.mark.parametrize("text", ['["e",' + "9" * 101 + "]", "[", '{"a":}', "\ufeff[]", ""])
def test_what_the_library_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        eio_json.loads(text)
    with pytest.raises(ValueError):
        PacketJson.loads(text)


def test_other_arguments_still_reach_the_json_module() -> None:
    assert PacketJson.dumps({"b": 1, "a": 2}, sort_keys=True) == '{"a": 2, "b": 1}'
    assert PacketJson.loads(b'{"a": 1}') == {"a": 1}


# JSON values as clients send them, with what orjson treats differently from the stdlib: integers
# past 64 bits, and every kind of text (surrogates included).
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(JSON_VALUES)
def test_what_we_write_reads_back_as_the_library_writes_it(value: Any) -> None:
    theirs = json.dumps(value, separators=(",", ":"))
    assert json.loads(PacketJson.dumps(value, separators=(",", ":"))) == json.loads(theirs)
    assert PacketJson.loads(theirs) == eio_json.loads(theirs)


def _outcome(loads: Any, text: str) -> tuple[str, Any]:
    try:
        return "ok", loads(text)
    except ValueError:
        return "refused", None


@given(st.text(alphabet='[]{}",:.-+eE0123456789 \\tnul\ud800\u00e9aN', max_size=30))
def test_any_text_is_read_or_refused_as_the_library_does(text: str) -> None:
    ours, theirs = _outcome(PacketJson.loads, text), _outcome(eio_json.loads, text)
    if ours[0] == theirs[0] == "ok" and isinstance(ours[1], float) and math.isnan(ours[1]):
        return
    assert ours == theirs


@pytest.mark.parametrize(
    "text", ["[18446744073709551616]", "[-9223372036854775809]", "[" + "1" * 30 + "]", '"\\udfff"', "[1e309]"]
)
def test_what_orjson_reads_otherwise_gets_the_library_answer(text: str) -> None:
    assert repr(PacketJson.loads(text)) == repr(eio_json.loads(text))


def test_nan_and_infinity_are_sent_as_null_not_as_invalid_json() -> None:
    # as Node's JSON.stringify: the stdlib's NaN and Infinity are refused by every JSON parser
    assert PacketJson.dumps([math.nan, math.inf, -math.inf], separators=(",", ":")) == "[null,null,null]"


# Socket.IO packet texts as clients (and attackers) write them: any type digit, namespaces with
# odd characters, ids of any length or digit kind, attachments, and payloads of any shape.
PACKET_TEXTS = st.builds(
    lambda kind, attachments, namespace, ack, payload: f"{kind}{attachments}{namespace}{ack}{payload}",
    st.sampled_from("2222220123456"),  # mostly EVENTs, the packets parse_event reads
    st.sampled_from(["", "", "", "1-", "12-"]),
    st.sampled_from(["", "/", "/chat,", "/a?x=1,", "/[[,", "/no-comma", "/é,"]),
    st.sampled_from(["", "0", "7", "007", "1" * 18, "1" * 19, "1" * 101, "\u0661"]),
    st.one_of(
        st.sampled_from(
            ["", " []", "[]", '["connect"]', '["e"', "[1]", '["e",{"_placeholder":true,"num":0}]']
        ),
        JSON_VALUES.map(lambda v: json.dumps(["event", v])),
        JSON_VALUES.map(json.dumps),
    ),
)


@settings(max_examples=1000)
@given(PACKET_TEXTS)
def test_parse_event_reads_what_portal_packet_reads_or_leaves_it(text: str) -> None:
    parsed = parse_event(text, PacketJson.loads)
    if parsed is None:
        return  # PortalPacket decides
    packet = PortalPacket(encoded_packet=text)
    assert packet.packet_type == sio_packet.EVENT
    assert parsed == (packet.namespace or "/", packet.id, packet.data)


@pytest.mark.parametrize(
    "text", ['2["e"]', '2["e",{"a":1}]', '2/chat,["e"]', '212["e"]', '2/chat,7["e",null]', '2/,3["x"]']
)
def test_parse_event_reads_the_plain_events_itself(text: str) -> None:
    packet = PortalPacket(encoded_packet=text)
    assert parse_event(text, PacketJson.loads) == (packet.namespace or "/", packet.id, packet.data)
