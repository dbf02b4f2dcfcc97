"""The one error type a guest or operator ever sees.

Why one type: every bad input (a truncated file, no face, a full queue) must become the same
shape of answer everywhere: an HTTP status, a stable machine-readable ``code``, a sentence for
a person, and what to do next. The web layer turns it into a 4xx JSON body and the kiosk into a
friendly screen; the CLI prints it. Raise it with a code from the table in the README.
"""

from __future__ import annotations

from typing import Any


class UserFacingError(Exception):
    """A problem the person in front of the booth can understand and act on."""

    def __init__(self, code: str, message: str, *, status: int = 400, remedy: str = "",
                 retry_after_s: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.remedy = remedy
        self.retry_after_s = retry_after_s
        self.headers = dict(headers or {})  # e.g. Content-Range on a 416

    def detached(self) -> UserFacingError:
        """The same error with no traceback, cause or context.

        Why: a traceback holds every frame it passed through, and those frames hold a guest's
        pixels (views of secure buffers); an error kept on a job would pin that memory until
        the cyclic garbage collector happened to run. Keep and re-raise this copy instead.
        """
        return UserFacingError(self.code, self.message, status=self.status, remedy=self.remedy,
                               retry_after_s=self.retry_after_s)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.remedy:
            body["remedy"] = self.remedy
        if self.retry_after_s is not None:
            body["retry_after_s"] = self.retry_after_s
        return body

    def __repr__(self) -> str:
        return f"UserFacingError({self.code!r}, {self.message!r}, status={self.status})"
