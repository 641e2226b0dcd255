"""The OpenAI-compatible API under /v1: models, chat completions, embeddings and responses, for
the tools people already use (the openai SDKs, LangChain, Open WebUI, LiteLLM). Replies go
through the same reply pipeline as chats (app/generation); see docs/openai-api.md."""
