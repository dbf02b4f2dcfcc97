"""Small programs the tests run in a separate process (under strace, or killed): real files, so
ruff and mypy check them like the rest of the code."""
