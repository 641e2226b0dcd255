"""What the tests are built from, apart from the fixtures in conftest.py: the run's database
(database.py), test settings (settings.py), an app in the test's loop (app.py), calling the API as
a user (api.py), the fake upstream, real servers (uvicorn in a thread or a process, aiosmtpd), the
SSE reader, and `wait.wait_until`, the one way a test waits for something to happen."""
