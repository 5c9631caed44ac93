"""The wire protocol: pydantic models of every event, the single source of the schemas and TS types."""
