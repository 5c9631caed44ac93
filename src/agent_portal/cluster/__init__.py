"""Several nodes as one cluster, through Redis (decisions §9): `serve --redis-url` with PostgreSQL."""
