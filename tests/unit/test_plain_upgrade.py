"""`plain_upgrade` (gateway/wsproto.py) takes an upgrade request from httptools' parse instead of
having websockets parse it again. What it takes must be a request websockets would answer with
a 101 and the same Sec-WebSocket-Accept, with nothing negotiated: checked here against
websockets' own `ServerProtocol`, fed the request the way uvicorn feeds it."""

from __future__ import annotations

import logging

from hypothesis import example, given, settings
from hypothesis import strategies as st
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from agent_portal.gateway.wsproto import plain_upgrade

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example key
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
TARGET = b"/socket.io/?EIO=4&transport=websocket"

# What browsers, the official socket.io-client (ws) and python-socketio's client (websocket-client
# or aiohttp) send, give or take the order.
BROWSER = [
    (b"host", b"127.0.0.1:8000"),
    (b"connection", b"Upgrade"),
    (b"pragma", b"no-cache"),
    (b"upgrade", b"websocket"),
    (b"origin", b"http://127.0.0.1:8000"),
    (b"sec-websocket-version", b"13"),
    (b"user-agent", b"Mozilla/5.0"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
]
NODE_WS = [
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-key", KEY),
    (b"connection", b"Upgrade"),
    (b"upgrade", b"websocket"),
    (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
    (b"host", b"127.0.0.1:8000"),
]
AIOHTTP = [
    (b"host", b"127.0.0.1:8000"),
    (b"upgrade", b"websocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
]


def websockets_answer(method: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> Response | None:
    """websockets' response to the request as uvicorn hands it over (`handle_websocket_upgrade`:
    the method, the target, `HTTP/1.1`, the headers as httptools parsed them), or None if it
    could not parse it."""
    raw = [method.encode(), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        raw += [name, b": ", value, b"\r\n"]
    raw.append(b"\r\n")
    conn = ServerProtocol(extensions=[], max_size=1_000_000, logger=logging.getLogger("test"))
    conn.receive_data(b"".join(raw))
    requests = [e for e in conn.events_received() if isinstance(e, Request)]
    if not requests:
        return None
    return conn.accept(requests[0])


def check(method: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> str | None:
    accept = plain_upgrade({"method": method, "http_version": "1.1"}, target, headers)
    if accept is not None:
        response = websockets_answer(method, target, headers)
        assert response is not None and response.status_code == 101, (headers, response)
        assert response.headers["Sec-WebSocket-Accept"] == accept
        # nothing negotiated, so the 101 `_accept` writes needs no header websockets would add
        assert {name.lower() for name in response.headers} == {
            "date",
            "upgrade",
            "connection",
            "sec-websocket-accept",
        }
    return accept


def test_what_clients_send_is_taken() -> None:
    for headers in (BROWSER, NODE_WS, AIOHTTP):
        assert check("GET", TARGET, headers) == ACCEPT


def test_what_websockets_must_judge_is_left_to_it() -> None:
    def without(name: bytes) -> list[tuple[bytes, bytes]]:
        return [(n, v) for n, v in NODE_WS if n != name]

    def replaced(name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
        return [*without(name), (name, value)]

    refused = {
        "POST": ("POST", TARGET, NODE_WS),
        "no key": ("GET", TARGET, without(b"sec-websocket-key")),
        "short key": ("GET", TARGET, replaced(b"sec-websocket-key", b"c2hvcnQ=")),
        "two keys": ("GET", TARGET, [*NODE_WS, (b"sec-websocket-key", KEY)]),
        "version 8": ("GET", TARGET, replaced(b"sec-websocket-version", b"8")),
        "no upgrade option": ("GET", TARGET, replaced(b"connection", b"keep-alive")),
        "bad connection": ("GET", TARGET, replaced(b"connection", b"Upgrade;")),
        "h2c": ("GET", TARGET, replaced(b"upgrade", b"websocket, h2c")),
        "two origins": ("GET", TARGET, [*NODE_WS, (b"origin", b"a"), (b"origin", b"b")]),
        "subprotocol": ("GET", TARGET, [*NODE_WS, (b"sec-websocket-protocol", b"chat")]),
        "body": ("GET", TARGET, [*NODE_WS, (b"content-length", b"5")]),
        "chunked": ("GET", TARGET, [*NODE_WS, (b"transfer-encoding", b"chunked")]),
        "non-ASCII target": ("GET", "/socket.io/?q=é".encode(), NODE_WS),
        "too many headers": ("GET", TARGET, NODE_WS + [(b"x-h", b"v")] * 128),
    }
    for what, (method, target, headers) in refused.items():
        assert check(method, target, headers) is None, what


NAMES = [
    b"connection",
    b"upgrade",
    b"sec-websocket-key",
    b"sec-websocket-version",
    b"origin",
    b"sec-websocket-extensions",
    b"sec-websocket-protocol",
    b"content-length",
    b"transfer-encoding",
    b"host",
]
VALUES = st.sampled_from(
    [
        b"Upgrade",
        b"upgrade",
        b"keep-alive, Upgrade",
        b"keep-alive,,Upgrade",
        b" Upgrade ",
        b"Upgrade;",
        b"close",
        b"websocket",
        b"WebSocket",
        b"websocket, h2c",
        b"h2c",
        KEY,
        b"dGhlIHNhbXBsZSBub25jZQ",
        b"c2hvcnQ=",
        b"13",
        b"8",
        b"0",
        b"5",
        b"chunked",
        b"",
        b"http://example.com",
        b"permessage-deflate",
        b"chat",
    ]
)
HEADERS = st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=12)


@settings(max_examples=3000, deadline=None)
@given(
    base=st.sampled_from([NODE_WS, BROWSER, AIOHTTP, []]), extra=HEADERS, drop=st.sets(st.sampled_from(NAMES))
)
@example(base=NODE_WS, extra=[(b"upgrade", b"WebSocket")], drop={b"upgrade"})
@example(base=NODE_WS, extra=[(b"connection", b"keep-alive,,Upgrade")], drop={b"connection"})
def test_anything_taken_is_accepted_by_websockets_with_the_same_key(
    base: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]], drop: set[bytes]
) -> None:
    headers = [(n, v) for n, v in base if n not in drop] + extra
    check("GET", TARGET, headers)
