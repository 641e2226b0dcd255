"""What the tests are built from, apart from the fixtures in conftest.py: the fake upstream, real
servers (uvicorn in a thread or a process, aiosmtpd), the SSE reader, and `wait.wait_until`, the
one way a test waits for something to happen."""
