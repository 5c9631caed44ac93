"""The product path: the real server (`agent_portal.app.create_app`) as `agent-portal serve` runs it.

A fresh data dir (SQLite) per run, one external project `bench`, abuse limits raised out of the way
(the load generator is one user on one address), recovery on. Before listening it prints
`BENCH_AUTH {"member": token, "orchestrator": token, "project": "bench"}`; the driver hands that to
the load generator, whose subscribers connect to `/project/bench` and `/monitoring` with
`auth: {token, recovery: true}` and whose publisher is an orchestrator on `/orchestrator` sending
`publish {event: "test_output" | "state_change", data}` (bench/README.md).

With `--redis-url` (and a PostgreSQL `--database-url`) it is one node of a cluster, as `agent-portal serve
--redis-url ... --cluster-name ...` runs it: the driver starts the first node with `--init` (it adds the
project to the shared database and prints the tokens), then the others, all with the same secret, so a
token issued by the first is valid on every node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import uvicorn

from agent_portal.app import create_app
from agent_portal.gateway.wsproto import PortalHttpProtocol, PortalWebSocketProtocol
from agent_portal.serving import PortalServer, tune_gc
from agent_portal.settings import Settings
from agent_portal.storage.store import ProjectRecord

PROJECT = "bench"
UNLIMITED = 1_000_000_000


async def main(
    port: int,
    data_dir: Path,
    database_url: str | None = None,
    redis_url: str | None = None,
    cluster_name: str = "agent-portal",
    init: bool = True,
) -> None:
    settings = Settings(
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        cluster_name=cluster_name,
        secret="b" * 48,
        log_json=False,
        ping_interval=25.0,
        ping_timeout=20.0,
        max_message_bytes=1_000_000,
    )
    app = await create_app(settings)
    # The load generator is one user on one address, far past what the admin form allows (1000
    # connections, 1000 events/s): the live security config is replaced without validation.
    unlimited = app.services.config.security.model_copy(
        update={"events_per_second": UNLIMITED, "events_per_minute": UNLIMITED, "max_connections": UNLIMITED}
    )
    app.services.config._current["security"] = unlimited
    app.services.limiter.config = unlimited
    if init:
        # The other nodes of a cluster share the database (the project) and the secret (the tokens).
        now = datetime.now(UTC)
        await app.services.store.add_project(ProjectRecord(PROJECT, None, True, now, now))
        tokens = app.services.tokens
        auth = {
            "member": tokens.issue("viewer", "member", [PROJECT], 24 * 3600).token,
            "orchestrator": tokens.issue("bot", "orchestrator", [PROJECT], 24 * 3600).token,
            "project": PROJECT,
        }
        print(f"BENCH_AUTH {json.dumps(auth)}", flush=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        app.asgi,
        lifespan="on",
        log_level="warning",
        access_log=False,
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=None,
        http=PortalHttpProtocol,
        ws=PortalWebSocketProtocol,
        backlog=4096,
        timeout_graceful_shutdown=2,
    )
    where = f" (cluster {cluster_name}, node {app.cluster.id})" if app.cluster is not None else ""
    print(f"product agent_portal.app.create_app{where} listening on 127.0.0.1:{port}", flush=True)
    tune_gc()  # as `agent-portal serve` does
    await PortalServer(config, app.sio).serve(sockets=[sock])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", help="default: SQLite in a fresh data dir")
    parser.add_argument("--redis-url", help="a node of the cluster --cluster-name on this Redis")
    parser.add_argument("--cluster-name", default="agent-portal")
    parser.add_argument(
        "--no-init",
        dest="init",
        action="store_false",
        help="another node added the project and printed the tokens",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-product-") as tmp:
        run = main(args.port, Path(tmp), args.database_url, args.redis_url, args.cluster_name, args.init)
        try:
            import uvloop

            uvloop.run(run)
        except ImportError:
            asyncio.run(run)
