"""The upstream: the OpenAI-compatible servers Parley calls for replies, and the built-in echo.

- types.py      what a provider takes (model, sampling) and yields (text, usage, finish)
- openai.py     the provider that calls an upstream: request, retries, deadlines
- sse.py        reading the upstream's stream: SSE lines and OpenAI chunks
- errors.py     turning what an upstream says on failure into Parley's errors
- echo.py       the built-in `echo` model, for running without an upstream
- transport.py  the one shared HTTP client and its network backend
- registry.py   the models users can pick, and the provider for each
- probe.py      whether each upstream is reachable (/health/ready)
"""
