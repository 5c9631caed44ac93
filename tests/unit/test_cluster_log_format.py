"""The cluster log's entry format (cluster/log.py): one entry per publication with its targets, and
entries of the one-namespace format of before read as one-target entries (a rolling upgrade)."""

from __future__ import annotations

from datetime import UTC, datetime

from agent_portal.cluster.log import decode_entry, encode_entry
from agent_portal.storage.store import LogEntry, Target

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_an_entry_with_two_targets_comes_back_as_it_went() -> None:
    targets = (Target("/project/p", ("p:p", "p:p:test_output")), Target("/monitoring", ("p:p",), ("s1",)))
    entry = LogEntry(0, targets, "test_output", {"n": 1}, T0, '["test_output",{"n":1}]')
    node, decoded = decode_entry(b"7 " + encode_entry("node-a", entry).encode())
    assert node == "node-a"
    assert decoded == LogEntry(7, targets, "test_output", {"n": 1}, T0)
    assert decoded.encoded == '["test_output",{"n":1}]'


def test_an_entry_of_the_one_namespace_format_is_a_one_target_entry() -> None:
    old = b'9 ["node-b","/chat/demo",["all"],["s2"],"message_received","2026-12-07T12:00:00+00:00"]\n'
    node, decoded = decode_entry(old + b'["message_received",{"id":"m"}]')
    assert node == "node-b"
    assert decoded == LogEntry(
        9, (Target("/chat/demo", ("all",), ("s2",)),), "message_received", {"id": "m"}, T0
    )
