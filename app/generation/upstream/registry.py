"""The models users can pick, where each one lives, and the provider that speaks to it."""

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from app.core.config import Settings
from app.generation.errors import UnknownModel
from app.generation.upstream.echo import EchoProvider
from app.generation.upstream.routed import RoutedProvider
from app.generation.upstream.types import Deployment, ModelConfig, Provider
from app.groups.access import ModelPermit

ECHO = ModelConfig(
    name="echo",
    base_url=None,
    api_key=None,
    upstream_model="echo",
    context_length=8192,
    provider="echo",
    # Echo "sees" images so that attachments work end to end with no model server: it is sent
    # the same content parts as a vision model, and says how many images it got.
    vision=True,
)


class ModelRegistry:
    """Named models from settings. Echo is always there, and the default only without upstreams.

    Internal models (the guard model, GUARD_MODEL) serve Parley itself: they are not listed and
    cannot be asked for by name, as if they did not exist. The same holds, for one user, of a
    model restricted to groups they are not in: every listing and every resolution takes the
    user's `ModelPermit` (app/groups/access.py), so no entry point can forget it."""

    def __init__(
        self, models: list[ModelConfig], *, default: str, internal: frozenset[str] = frozenset()
    ) -> None:
        self._models = {model.name: model for model in models}
        self._models.setdefault(ECHO.name, ECHO)
        if default not in self._models:
            raise ValueError(f"DEFAULT_MODEL {default!r} is not a configured model")
        if default in internal:
            raise ValueError(
                f"the default model {default!r} is GUARD_MODEL: a guard model is internal; set "
                "DEFAULT_MODEL (or LLM_MODEL) to a chat model"
            )
        self.default = default
        self.internal = internal

    @classmethod
    def from_settings(cls, settings: Settings) -> "ModelRegistry":
        models: list[ModelConfig] = []
        default_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        if settings.llm_base_url:
            upstream_id = settings.llm_model or "default"
            models.append(
                _model(
                    upstream_id,
                    {},
                    [{"base_url": settings.llm_base_url, "model": upstream_id}],
                    settings=settings,
                    default_key=default_key,
                    vision=settings.llm_vision,
                )
            )
        specs = {**read_models_file(settings.llm_models_file), **settings.llm_models}
        for name, spec in specs.items():
            if not isinstance(spec, dict):
                raise ValueError(f"LLM_MODELS[{name!r}] must be an object")
            vision = spec.get("vision", False)
            if not isinstance(vision, bool):
                raise ValueError(f"LLM_MODELS[{name!r}]: vision must be true or false")
            deployments = spec.get("deployments")
            if deployments is None:
                base_url = spec.get("base_url") or settings.llm_base_url
                if not base_url:
                    raise ValueError(f"models without a base_url (and no LLM_BASE_URL): [{name!r}]")
                deployments = [{**spec, "base_url": base_url}]
            elif not isinstance(deployments, list) or not deployments:
                raise ValueError(f"LLM_MODELS[{name!r}]: deployments must be a non-empty list")
            models.append(
                _model(
                    name,
                    spec,
                    deployments,
                    settings=settings,
                    default_key=default_key,
                    vision=vision,
                )
            )
        internal = frozenset({settings.guard_model} if settings.guard_model else ())
        chat_models = [m for m in models if m.name not in internal]
        default = settings.default_model or (chat_models[0].name if chat_models else ECHO.name)
        registry = cls(models, default=default, internal=internal)
        for model, fallbacks in settings.llm_fallbacks.items():
            unknown = [name for name in (model, *fallbacks) if name not in registry._models]
            if unknown:
                raise ValueError(f"LLM_FALLBACKS names models that do not exist: {unknown}")
        return registry

    @property
    def upstream_configured(self) -> bool:
        return any(model.provider != "echo" for model in self._models.values())

    def all(self, *, internal: bool = False) -> list[ModelConfig]:
        """Every model users may pick, whatever their groups (for Parley itself: routing,
        probes, the catalogue); `internal=True` adds the guard model. What one user may see is
        `visible(permit)`."""
        return [m for m in self._models.values() if internal or m.name not in self.internal]

    def visible(self, permit: ModelPermit) -> list[ModelConfig]:
        """The models the user of `permit` may pick."""
        return [m for m in self.all() if permit.allows(m.name)]

    def names(self) -> frozenset[str]:
        """Every model users may pick, by name."""
        return frozenset(m.name for m in self.all())

    def internal_model(self, name: str) -> ModelConfig | None:
        """A model by name, internal ones included (the guardrails' guard model)."""
        return self._models.get(name)

    def resolve(self, *preferred: str | None, permit: ModelPermit) -> ModelConfig:
        """The first of `preferred` that is given (a request's model, then its chat's, then the
        user's default), or the default model; UnknownModel when the one chosen does not exist,
        or is restricted to groups the user of `permit` is not in (the same answer)."""
        name = next((name for name in preferred if name), None)
        model = self._models.get(name or self.default)
        if model is None or model.name in self.internal or not permit.allows(model.name):
            raise UnknownModel(f"Unknown model {name!r}. GET /api/models lists the available ones.")
        return model


def read_models_file(path: Path | None) -> dict[str, Any]:
    """LLM_MODELS_FILE: the same structure as LLM_MODELS, in YAML (.yaml, .yml) or JSON."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"LLM_MODELS_FILE {str(path)!r} cannot be read: {exc}") from exc
    try:
        data = (
            yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
        )
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"LLM_MODELS_FILE {str(path)!r} is not valid: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"LLM_MODELS_FILE {str(path)!r} must hold an object of models")
    return data


def _model(
    name: str,
    spec: dict[str, Any],
    deployments: list[Any],
    *,
    settings: Settings,
    default_key: str | None,
    vision: bool,
) -> ModelConfig:
    parsed: list[Deployment] = []
    for number, entry in enumerate(deployments):
        where = f"LLM_MODELS[{name!r}].deployments[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("base_url"), str):
            raise ValueError(f"{where} needs a base_url")
        parsed.append(
            Deployment(
                name=str(entry.get("name") or _host_of(entry["base_url"])),
                base_url=entry["base_url"],
                api_key=entry.get("api_key") or spec.get("api_key") or default_key,
                upstream_model=str(entry.get("model") or spec.get("model") or name),
                weight=_number(entry.get("weight", 1), where, "weight", positive=True),
                rpm=_limit(entry.get("rpm"), where, "rpm"),
                tpm=_limit(entry.get("tpm"), where, "tpm"),
                max_parallel=_limit(entry.get("max_parallel"), where, "max_parallel"),
            )
        )
    names = [d.name for d in parsed]
    if len(set(names)) != len(names):
        raise ValueError(
            f"LLM_MODELS[{name!r}]: deployments need distinct names (give each a name): {names}"
        )
    first = parsed[0]
    return ModelConfig(
        name=name,
        base_url=first.base_url,
        api_key=first.api_key,
        upstream_model=first.upstream_model,
        context_length=int(spec.get("context_length", settings.llm_context_length)),
        provider="openai",
        vision=vision,
        deployments=tuple(parsed),
    )


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _number(value: Any, where: str, field: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (positive and value <= 0):
        raise ValueError(f"{where}: {field} must be a positive number")
    return float(value)


def _limit(value: Any, where: str, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: {field} must be a positive whole number")
    return value


class Providers:
    """One provider per kind, sharing the app's single HTTP client; OpenAI-compatible models
    are called through the router (routed.py), across their deployments."""

    def __init__(self, *, openai: RoutedProvider, echo: EchoProvider) -> None:
        self.routed = openai
        self._by_kind: dict[str, Provider] = {"openai": openai, "echo": echo}

    def for_model(self, model: ModelConfig, *, sticky: str | None = None) -> Provider:
        """The provider of `model`; `sticky`: the deployment that served the chat's last turn."""
        if model.provider == "openai" and sticky is not None:
            return self.routed.with_sticky(sticky)
        return self._by_kind[model.provider]
