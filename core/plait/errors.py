"""Every exception plait raises on purpose. Each message names the problem and the fix."""

from __future__ import annotations


class PlaitError(Exception):
    """Base class for all plait errors."""


class SignatureError(PlaitError, ValueError):
    """A malformed signature string, class or edit (names the offending part)."""


class ConfigurationError(PlaitError, RuntimeError):
    """Something the user must configure is missing (e.g. no LM configured)."""


class PluginError(PlaitError):
    """A plugin failed to load, or two plugins registered the same name."""


class UnknownBackendError(PluginError, LookupError):
    """A provider / retriever / embedder / adapter / teleprompter name nobody registered."""


class MissingExtraError(PluginError, ImportError):
    """A backend's optional dependencies are not installed; the message has the pip command."""


class AdapterParseError(PlaitError, ValueError):
    """The LM's completion could not be parsed into the signature's output fields.

    ``completion`` holds the raw text the LM produced (nothing is lost), ``adapter`` the
    adapter's name, ``signature`` the signature being parsed, ``parsed`` the fields that did parse
    and ``field`` the output field whose value failed validation (None when fields were missing).
    """

    def __init__(self, message: str, *, completion: str = "", adapter: str = "", signature=None,
                 parsed: dict | None = None, field: str | None = None):
        super().__init__(message)
        self.completion = completion
        self.adapter = adapter
        self.signature = signature
        self.parsed = parsed or {}
        self.field = field


class RetrieverUnavailableError(PlaitError, ConnectionError):
    """A retriever's server stayed unreachable after bounded retries (the message names it).

    Raised instead of returning partial results: a batch either answers every query or fails.
    """


class StateError(PlaitError, ValueError):
    """A saved program file does not match the program it is loaded into (names the mismatch)."""


# --- LM errors: typed so retries can tell retryable from fatal ---------------------------

class LMError(PlaitError):
    """An LM backend call failed. ``retryable`` says whether a retry may help."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 provider: str = ""):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.provider = provider


class LMAuthError(LMError):
    """Credentials missing or rejected (HTTP 401/403). Not retried."""


class LMRateLimitError(LMError):
    """Rate limited (HTTP 429). Retried, honouring ``retry_after`` when the server sends it."""

    retryable = True


class LMTimeoutError(LMError):
    """The request timed out. Retried."""

    retryable = True


class LMServerError(LMError):
    """The server failed (HTTP 5xx) or the connection broke. Retried."""

    retryable = True


class LMConnectionError(LMServerError):
    """The server could not be reached (connection refused, DNS). Retried, bounded."""


class LMContextWindowError(LMError):
    """The prompt does not fit the model's context window. Not retried."""


class LMBadRequestError(LMError):
    """The backend rejected the request as malformed (HTTP 400/404/422). Not retried."""
