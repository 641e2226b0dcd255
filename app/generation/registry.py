"""The models users can pick, where each one lives, and the provider that speaks to it."""

import logging

from app.core.config import Settings
from app.core.errors import AppError
from app.generation.client import EchoProvider, LLMProvider, ModelConfig, OpenAIProvider

logger = logging.getLogger("parley.generation")

ECHO = ModelConfig(
    name="echo",
    base_url=None,
    api_key=None,
    upstream_model="echo",
    context_length=8192,
    provider="echo",
)


class UnknownModel(AppError):
    status_code = 422
    code = "unknown_model"
    message = "No such model. GET /api/models lists the available ones."


class ModelRegistry:
    """Named models from settings. Echo is always there, and the default only without upstreams."""

    def __init__(self, models: list[ModelConfig], *, default: str) -> None:
        self._models = {model.name: model for model in models}
        self._models.setdefault(ECHO.name, ECHO)
        if default not in self._models:
            raise ValueError(f"DEFAULT_MODEL {default!r} is not a configured model")
        self.default = default

    @classmethod
    def from_settings(cls, settings: Settings) -> "ModelRegistry":
        models: list[ModelConfig] = []
        if settings.llm_base_url:
            upstream_id = settings.llm_model or "default"
            models.append(
                ModelConfig(
                    name=upstream_id,
                    base_url=settings.llm_base_url,
                    api_key=settings.llm_api_key.get_secret_value()
                    if settings.llm_api_key
                    else None,
                    upstream_model=upstream_id,
                    context_length=settings.llm_context_length,
                    provider="openai",
                )
            )
        for name, spec in settings.llm_models.items():
            models.append(
                ModelConfig(
                    name=name,
                    base_url=spec.get("base_url") or settings.llm_base_url,
                    api_key=spec.get("api_key")
                    or (settings.llm_api_key.get_secret_value() if settings.llm_api_key else None),
                    upstream_model=spec.get("model", name),
                    context_length=int(spec.get("context_length", settings.llm_context_length)),
                    provider="openai",
                )
            )
        missing = [m.name for m in models if not m.base_url]
        if missing:
            raise ValueError(f"models without a base_url (and no LLM_BASE_URL): {missing}")
        default = settings.default_model or (models[0].name if models else ECHO.name)
        return cls(models, default=default)

    @property
    def upstream_configured(self) -> bool:
        return any(model.provider != "echo" for model in self._models.values())

    def all(self) -> list[ModelConfig]:
        return list(self._models.values())

    def resolve(self, name: str | None) -> ModelConfig:
        model = self._models.get(name or self.default)
        if model is None:
            raise UnknownModel(f"Unknown model {name!r}. GET /api/models lists the available ones.")
        return model


class Providers:
    """One provider per kind, sharing the app's single HTTP client."""

    def __init__(self, *, openai: OpenAIProvider, echo: EchoProvider) -> None:
        self._by_kind: dict[str, LLMProvider] = {"openai": openai, "echo": echo}

    def for_model(self, model: ModelConfig) -> LLMProvider:
        return self._by_kind[model.provider]
