"""The models users can pick, where each one lives, and the provider that speaks to it."""

from app.core.config import Settings
from app.generation.errors import UnknownModel
from app.generation.upstream.echo import EchoProvider
from app.generation.upstream.openai import OpenAIProvider
from app.generation.upstream.types import ModelConfig, Provider

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
    cannot be asked for by name, as if they did not exist."""

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
                    vision=settings.llm_vision,
                )
            )
        for name, spec in settings.llm_models.items():
            vision = spec.get("vision", False)
            if not isinstance(vision, bool):
                raise ValueError(f"LLM_MODELS[{name!r}]: vision must be true or false")
            models.append(
                ModelConfig(
                    name=name,
                    base_url=spec.get("base_url") or settings.llm_base_url,
                    api_key=spec.get("api_key")
                    or (settings.llm_api_key.get_secret_value() if settings.llm_api_key else None),
                    upstream_model=spec.get("model", name),
                    context_length=int(spec.get("context_length", settings.llm_context_length)),
                    provider="openai",
                    vision=vision,
                )
            )
        missing = [m.name for m in models if not m.base_url]
        if missing:
            raise ValueError(f"models without a base_url (and no LLM_BASE_URL): {missing}")
        internal = frozenset({settings.guard_model} if settings.guard_model else ())
        chat_models = [m for m in models if m.name not in internal]
        default = settings.default_model or (chat_models[0].name if chat_models else ECHO.name)
        return cls(models, default=default, internal=internal)

    @property
    def upstream_configured(self) -> bool:
        return any(model.provider != "echo" for model in self._models.values())

    def all(self, *, internal: bool = False) -> list[ModelConfig]:
        """The models users may pick; `internal=True` adds the guard model."""
        return [m for m in self._models.values() if internal or m.name not in self.internal]

    def internal_model(self, name: str) -> ModelConfig | None:
        """A model by name, internal ones included (the guardrails' guard model)."""
        return self._models.get(name)

    def resolve(self, *preferred: str | None) -> ModelConfig:
        """The first of `preferred` that is given (a request's model, then its chat's, then the
        user's default), or the default model; UnknownModel when the one chosen does not exist."""
        name = next((name for name in preferred if name), None)
        model = self._models.get(name or self.default)
        if model is None or model.name in self.internal:
            raise UnknownModel(f"Unknown model {name!r}. GET /api/models lists the available ones.")
        return model


class Providers:
    """One provider per kind, sharing the app's single HTTP client."""

    def __init__(self, *, openai: OpenAIProvider, echo: EchoProvider) -> None:
        self._by_kind: dict[str, Provider] = {"openai": openai, "echo": echo}

    def for_model(self, model: ModelConfig) -> Provider:
        return self._by_kind[model.provider]
