"""What the tests are built from, apart from the fixtures in conftest.py: the fake upstream, real
servers (uvicorn in a thread or a process, aiosmtpd) and the SSE reader."""
