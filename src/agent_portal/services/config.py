"""Live configuration (agent, system, security, user): validated, persisted, applied, announced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from pydantic import ValidationError

from agent_portal.clock import SystemClock
from agent_portal.errors import ValidationFailed
from agent_portal.gateway.publisher import Publisher
from agent_portal.protocol.common import ConfigType, ErrorDetail, WireModel
from agent_portal.protocol.config import CONFIG_MODELS, AgentConfig, SecurityConfig, SystemConfig, UserConfig
from agent_portal.protocol.server_events import ConfigChangedEvent
from agent_portal.storage.store import ConfigRecord, Store

Listener = Callable[[str, WireModel], None]


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class ConfigService:
    def __init__(
        self, store: Store, publisher: Publisher, clock: SystemClock, defaults: dict[str, WireModel]
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._current: dict[str, WireModel] = {k: defaults.get(k, m()) for k, m in CONFIG_MODELS.items()}
        self.listeners: list[Listener] = []

    async def load(self) -> None:
        for config_type, model in CONFIG_MODELS.items():
            record = await self._store.get_config(config_type)
            if record is not None:
                # A stored document from an older version may lack new keys: merge over the defaults.
                base = self._current[config_type].model_dump()
                self._current[config_type] = model.model_validate(_merge(base, record.data))

    async def reload(self) -> None:
        """Reads every config again (another node of the cluster changed one) and applies it."""
        await self.load()
        for config_type, model in self._current.items():
            for listener in self.listeners:
                listener(config_type, model)

    @property
    def security(self) -> SecurityConfig:
        return cast(SecurityConfig, self._current["security"])

    @property
    def system(self) -> SystemConfig:
        return cast(SystemConfig, self._current["system"])

    @property
    def agents(self) -> AgentConfig:
        return cast(AgentConfig, self._current["agent"])

    @property
    def user(self) -> UserConfig:
        return cast(UserConfig, self._current["user"])

    def get(self, config_type: str) -> WireModel:
        return self._current[config_type]

    async def update(
        self, config_type: ConfigType, changes: dict[str, Any], changed_by: str, reason: str | None
    ) -> WireModel:
        model = CONFIG_MODELS[config_type]
        try:
            updated = model.model_validate(_merge(self._current[config_type].model_dump(), changes))
        except ValidationError as exc:
            details = [
                ErrorDetail(path="changes." + ".".join(str(p) for p in e["loc"]), message=e["msg"])
                for e in exc.errors(include_url=False, include_input=False)
            ]
            raise ValidationFailed(f"Invalid {config_type} configuration", details=details) from None
        now = self._clock.now()
        await self._store.set_config(
            ConfigRecord(config_type, updated.model_dump(mode="json"), changed_by, now)
        )
        self._current[config_type] = updated
        for listener in self.listeners:
            listener(config_type, updated)
        await self._publisher.to_admins(
            "config_changed",
            ConfigChangedEvent(
                config_type=config_type, changed_by=changed_by, changes=changes, timestamp=now, reason=reason
            ),
        )
        return updated
