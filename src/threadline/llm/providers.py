"""Which provider serves a model: the default upstream from settings, plus an optional TOML models file.

```toml
[providers.ollama]
base_url = "http://localhost:11434/v1"
api_key = "ollama"              # optional
[providers.hosted]
base_url = "https://api.example.com/v1"
api_key_env = "HOSTED_KEY"      # the key is read from this env var when the file is loaded
[[models]]
name = "llama3"                 # an exact model name ...
provider = "ollama"
upstream_model = "llama3.1:8b"  # ... optionally renamed for the upstream
[[models]]
prefix = "gpt-"                 # ... or a name prefix
provider = "hosted"
```

Resolution order: an exact ``name``, then the longest matching ``prefix``, then the default provider
(``THREADLINE_UPSTREAM_BASE_URL``, any model), else ``NoProviderForModel``.
"""

from __future__ import annotations

import logging
import os
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from threadline.config import Settings
from threadline.domain.errors import NoProviderForModel
from threadline.llm.client import OpenAICompatibleModel, open_client
from threadline.llm.faults import RetryPolicy
from threadline.llm.types import ChatModel
from threadline.observability.metrics import UPSTREAM_ERRORS

log = logging.getLogger(__name__)

# GET /v1/models asks the default upstream for its list at most this often.
UPSTREAM_MODELS_TTL_S = 60.0
UPSTREAM_MODELS_TIMEOUT_S = 5.0

_PROVIDER_KEYS = frozenset({"base_url", "api_key", "api_key_env"})
_MODEL_KEYS = frozenset({"name", "prefix", "provider", "upstream_model"})


class ModelsFileInvalid(ValueError):
    """The models file cannot be read or does not follow the documented shape; raised at load."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    base_url: str
    api_key: str


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """``name`` (exact) xor ``prefix``; ``upstream_model`` renames an exact name for the upstream."""

    provider: str
    name: str | None = None
    prefix: str | None = None
    upstream_model: str | None = None


@dataclass(frozen=True, slots=True)
class ModelsFile:
    providers: dict[str, ProviderConfig]
    routes: list[ModelRoute]
    # When the file was last modified: the ``created`` of the models it names.
    modified_at: int = 0


@dataclass(frozen=True, slots=True)
class ListedModel:
    """One entry of GET /v1/models."""

    id: str
    created: int
    owned_by: str


def load_models_file(path: Path, env: Mapping[str, str] | None = None) -> ModelsFile:
    """Parse and validate the models file. ``env`` (default ``os.environ``) supplies ``api_key_env``
    keys. Raises ``ModelsFileInvalid`` naming the file and the offending entry."""
    env = os.environ if env is None else env
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ModelsFileInvalid(f"models file {path}: {err}") from err
    try:
        parsed = _parse(data, env)
    except ModelsFileInvalid as err:
        raise ModelsFileInvalid(f"models file {path}: {err}") from None
    return ModelsFile(parsed.providers, parsed.routes, int(path.stat().st_mtime))


def _parse(data: dict[str, Any], env: Mapping[str, str]) -> ModelsFile:
    unknown = set(data) - {"providers", "models"}
    if unknown:
        raise ModelsFileInvalid(
            f"unknown top-level keys {sorted(unknown)} (expected [providers.*] and [[models]])"
        )
    raw_providers = data.get("providers", {})
    if not isinstance(raw_providers, dict):
        raise ModelsFileInvalid("'providers' must be a table of [providers.<name>] tables")
    providers = {name: _parse_provider(name, raw, env) for name, raw in raw_providers.items()}
    raw_routes = data.get("models", [])
    if not isinstance(raw_routes, list):
        raise ModelsFileInvalid("'models' must be an array of [[models]] tables")
    routes = [_parse_route(i, raw, providers) for i, raw in enumerate(raw_routes)]
    seen: set[tuple[str, str]] = set()
    for route in routes:
        key = ("name", route.name) if route.name is not None else ("prefix", route.prefix or "")
        if key in seen:
            raise ModelsFileInvalid(f"{key[0]} {key[1]!r} is listed twice in [[models]]")
        seen.add(key)
    return ModelsFile(providers, routes)


def _parse_provider(name: str, raw: object, env: Mapping[str, str]) -> ProviderConfig:
    where = f"[providers.{name}]"
    if not isinstance(raw, dict):
        raise ModelsFileInvalid(f"{where} must be a table")
    _reject_unknown(where, raw, _PROVIDER_KEYS)
    base_url = raw.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ModelsFileInvalid(f'{where} needs base_url = "http(s)://..."')
    if "api_key" in raw and "api_key_env" in raw:
        raise ModelsFileInvalid(f"{where}: give api_key or api_key_env, not both")
    api_key = raw.get("api_key", "")
    if "api_key_env" in raw:
        var = raw["api_key_env"]
        if not isinstance(var, str) or not var:
            raise ModelsFileInvalid(f"{where}: api_key_env must name an environment variable")
        if var not in env:
            # Failing at start-up beats every run failing later with a 401.
            raise ModelsFileInvalid(f"{where}: environment variable {var} (api_key_env) is not set")
        api_key = env[var]
    if not isinstance(api_key, str):
        raise ModelsFileInvalid(f"{where}: api_key must be a string")
    return ProviderConfig(name=name, base_url=base_url, api_key=api_key)


def _parse_route(i: int, raw: object, providers: Mapping[str, ProviderConfig]) -> ModelRoute:
    where = f"[[models]] entry #{i + 1}"
    if not isinstance(raw, dict):
        raise ModelsFileInvalid(f"{where} must be a table")
    _reject_unknown(where, raw, _MODEL_KEYS)
    for key in _MODEL_KEYS:
        if key in raw and not isinstance(raw[key], str):
            raise ModelsFileInvalid(f"{where}: {key} must be a string")
    name, prefix = raw.get("name"), raw.get("prefix")
    if (name is None) == (prefix is None):
        raise ModelsFileInvalid(f"{where} needs exactly one of name or prefix")
    if prefix is not None and "upstream_model" in raw:
        raise ModelsFileInvalid(f"{where}: upstream_model only applies to an exact name, not a prefix")
    provider = raw.get("provider")
    if provider not in providers:
        known = ", ".join(sorted(providers)) or "none defined"
        raise ModelsFileInvalid(f"{where}: provider {provider!r} is not a [providers.*] table ({known})")
    return ModelRoute(
        provider=str(provider), name=name, prefix=prefix, upstream_model=raw.get("upstream_model")
    )


def _reject_unknown(where: str, raw: Mapping[str, object], allowed: frozenset[str]) -> None:
    # A typo such as ``base-url`` must not silently route a model to the wrong place.
    unknown = set(raw) - allowed
    if unknown:
        raise ModelsFileInvalid(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")


class ProviderRouter:
    """Maps a model name to a ``ChatModel`` and the upstream model name. Owns one SDK client per
    provider (connection pools are reused across runs); ``aclose()`` closes them all."""

    def __init__(
        self,
        models: Mapping[str, OpenAICompatibleModel],
        routes: list[ModelRoute],
        default: ChatModel | None,
        clients: list[openai.AsyncOpenAI],
        default_client: openai.AsyncOpenAI | None = None,
        routes_modified_at: int = 0,
    ) -> None:
        self._models = dict(models)
        self._exact = {r.name: r for r in routes if r.name is not None}
        # Longest first, so the first match is the longest matching prefix.
        self._prefixes = sorted(
            (r for r in routes if r.prefix is not None), key=lambda r: -len(r.prefix or "")
        )
        self._default = default
        self._clients = clients
        self._default_client = default_client
        self._routes_modified_at = routes_modified_at
        self._upstream_models: list[ListedModel] = []
        self._upstream_models_at = -UPSTREAM_MODELS_TTL_S

    @classmethod
    def serving(cls, model: ChatModel) -> ProviderRouter:
        """Every model name to ``model`` as the ``default`` provider: how a chat model is injected
        into a runtime (``open_runtime(model=...)``, the in-process tests)."""
        return cls({}, [], model, [])

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> ProviderRouter:
        """Build from ``upstream_*`` settings and ``models_file``. Raises ``ModelsFileInvalid`` (a
        ValueError) for a bad models file and ValueError for a non-http(s) upstream base URL."""
        parsed = ModelsFile({}, [])
        if settings.models_file is not None:
            parsed = load_models_file(settings.models_file, env)
        policy = RetryPolicy.from_settings(settings)
        clients: list[openai.AsyncOpenAI] = []

        def build(config: ProviderConfig) -> OpenAICompatibleModel:
            client = open_client(config.base_url, config.api_key, settings.upstream_timeout_s)
            clients.append(client)
            return OpenAICompatibleModel(
                client, api_key=config.api_key, timeout_s=settings.upstream_timeout_s, policy=policy
            )

        default: OpenAICompatibleModel | None = None
        default_client: openai.AsyncOpenAI | None = None
        if settings.upstream_base_url:
            if not settings.upstream_base_url.startswith(("http://", "https://")):
                raise ValueError("THREADLINE_UPSTREAM_BASE_URL must start with http:// or https://")
            default = build(ProviderConfig("default", settings.upstream_base_url, settings.upstream_api_key))
            default_client = clients[-1]
        models = {name: build(config) for name, config in parsed.providers.items()}
        return cls(models, parsed.routes, default, clients, default_client, parsed.modified_at)

    @property
    def provider_names(self) -> list[str]:
        """Every configured provider: ``default`` (the upstream base URL) and the models file's."""
        return (["default"] if self._default is not None else []) + sorted(self._models)

    def provider_for(self, model: str) -> str:
        """The name of the provider that serves ``model`` (``none`` when nothing does)."""
        route = self._exact.get(model)
        if route is None:
            route = next((r for r in self._prefixes if model.startswith(r.prefix or "")), None)
        if route is not None:
            return route.provider
        return "default" if self._default is not None else "none"

    async def list_models(self) -> list[ListedModel]:
        """The models file's named models (owned by their provider), then what the default upstream
        lists (cached for a minute). An unreachable upstream leaves its part out, never fails."""
        named = [
            ListedModel(r.name, self._routes_modified_at, r.provider) for r in self._exact.values() if r.name
        ]
        seen = {m.id for m in named}
        return named + [m for m in await self._listed_upstream() if m.id not in seen]

    async def _listed_upstream(self) -> list[ListedModel]:
        if self._default_client is None:
            return []
        now = time.monotonic()
        if now - self._upstream_models_at < UPSTREAM_MODELS_TTL_S:
            return self._upstream_models
        self._upstream_models_at = now
        try:
            page = await self._default_client.with_options(
                timeout=UPSTREAM_MODELS_TIMEOUT_S, max_retries=0
            ).models.list()
            self._upstream_models = [
                ListedModel(m.id, int(m.created or 0), m.owned_by or "default") for m in page.data
            ]
        except Exception as err:  # any failure: the list is only advisory
            log.warning(
                "listing the upstream's models failed (%s); /v1/models shows the models file only", err
            )
            self._upstream_models = []
        return self._upstream_models

    def resolve(self, model: str) -> tuple[ChatModel, str]:
        """``(chat model, upstream model name)`` for an assistant's ``model``; raises
        ``NoProviderForModel`` when nothing matches and there is no default provider."""
        route = self._exact.get(model)
        if route is None:
            route = next((r for r in self._prefixes if model.startswith(r.prefix or "")), None)
        if route is not None:
            return self._models[route.provider], route.upstream_model or model
        if self._default is not None:
            return self._default, model
        UPSTREAM_ERRORS.labels("no_provider").inc()
        raise NoProviderForModel(model)

    async def aclose(self) -> None:
        """Close every provider's connection pool. The router is unusable afterwards."""
        for client in self._clients:
            await client.close()
