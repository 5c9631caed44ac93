"""PortalPacket's codec (gateway/engine.py) gives python-socketio's answers, only faster."""

from __future__ import annotations

from typing import Any

import pytest
from engineio import json as eio_json
from socketio import packet as sio_packet

from agent_portal.gateway.engine import PacketJson, PortalPacket

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
        assert PortalPacket(kind, data=data, namespace="/n", id=7).encode() == theirs


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
