"""Errors every step raises: what went wrong, what to do about it, and whether a retry can help.

Two classes, and the exit code of a failed step derived from them in one place (`exit_code`):

- `ComponentError`, permanent: bad data, bad config, a gate refusal, a policy denial. The same
  input gives the same answer, so the step exits 2 and no retry class retries it.
- `TransientError`: a service refused the connection, timed out, answered 5xx or throttled,
  or a lock is held. The step exits 75 (EX_TEMPFAIL, sysexits.h) and its retry class retries
  it with backoff.

An exception no component anticipated exits 1 with its traceback; Argo retries it, since it
may be transient. `classify` turns the client libraries' own connection and timeout errors
into a `TransientError`, so a component needs to catch only what it can explain better, and a full
disk (ENOSPC, from Python or from DuckDB's spill) into a permanent error that says how much room the
step needs: the same step on the same sized disk fills it again, an hour in at 100M rows.
"""

from __future__ import annotations

import errno
from typing import ClassVar

__all__ = [
    "PERMANENT_EXIT_CODE",
    "TRANSIENT_EXIT_CODE",
    "UNEXPECTED_EXIT_CODE",
    "ComponentError",
    "TransientError",
    "classify",
    "disk_full_reason",
    "exit_code_for",
    "transient_reason",
]

PERMANENT_EXIT_CODE = 2
TRANSIENT_EXIT_CODE = 75
UNEXPECTED_EXIT_CODE = 1


class ComponentError(Exception):
    """A step failed for a reason the user must fix; retrying gives the same answer.

    The CLI prints `problem` and `fix` and exits 2; orchestrators show the same text in the
    failed pod's log, so an on-call engineer reads the fix without opening code.
    """

    kind: ClassVar[str] = "permanent"
    exit_code: ClassVar[int] = PERMANENT_EXIT_CODE
    retryable: ClassVar[bool] = False
    advice: ClassVar[str] = "a retry gives the same answer; fix the input or the config"

    def __init__(self, step: str, problem: str, fix: str) -> None:
        self.step = step
        self.problem = problem
        self.fix = fix
        super().__init__(
            f"[{step}] {problem}\n  fix: {fix}\n  failure: {self.kind} (exit {self.exit_code}: {self.advice})"
        )


class TransientError(ComponentError):
    """A service the step needs is unreachable, slow, failing or busy: a later attempt may pass."""

    kind: ClassVar[str] = "transient"
    exit_code: ClassVar[int] = TRANSIENT_EXIT_CODE
    retryable: ClassVar[bool] = True
    advice: ClassVar[str] = "the step's retry class retries it with backoff"


# Exception classes, by module-qualified name, that mean "the service is not answering now".
# Names, not imports: a step that never touched Redis must not import redis to classify.
_TRANSIENT_CLASSES = frozenset(
    {
        "builtins.ConnectionError",
        "builtins.TimeoutError",
        "redis.exceptions.ConnectionError",
        "redis.exceptions.TimeoutError",
        "redis.exceptions.BusyLoadingError",
        "redis.exceptions.TryAgainError",
        "psycopg.OperationalError",
        "psycopg2.OperationalError",
        "sqlalchemy.exc.OperationalError",
        "sqlalchemy.exc.DisconnectionError",
        "sqlalchemy.exc.TimeoutError",
        "botocore.exceptions.EndpointConnectionError",
        "botocore.exceptions.ConnectTimeoutError",
        "botocore.exceptions.ReadTimeoutError",
        "botocore.exceptions.ConnectionClosedError",
        "requests.exceptions.ConnectionError",
        "requests.exceptions.Timeout",
        "urllib3.exceptions.MaxRetryError",
        "urllib3.exceptions.NewConnectionError",
        "urllib3.exceptions.ProtocolError",
    }
)
_TRANSIENT_S3_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "ServiceUnavailable"}
)
_TRANSIENT_MLFLOW_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED"})


def _qualified_names(error: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(error).__mro__}


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not other for other in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def transient_reason(error: BaseException) -> str | None:
    """Why `error` (or an error it was raised from) is transient, or None when it is not."""
    for link in _chain(error):
        names = _qualified_names(link)
        if names & _TRANSIENT_CLASSES:
            return f"{type(link).__name__}: {link}"
        response = getattr(link, "response", None)
        if "botocore.exceptions.ClientError" in names and isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status >= 500 or status == 429 or code in _TRANSIENT_S3_CODES:
                return f"S3 answered {status or code}"
        if "mlflow.exceptions.MlflowException" in names:
            code = str(getattr(link, "error_code", ""))
            status = int(getattr(link, "get_http_status_code", lambda: 0)() or 0)
            if code in _TRANSIENT_MLFLOW_CODES or status >= 500 or status == 429:
                return f"MLflow answered {code or status}"
        if "kubernetes.client.exceptions.ApiException" in names:
            status = int(getattr(link, "status", 0) or 0)
            if status >= 500 or status == 429 or status == 0:
                return f"the Kubernetes API answered {status or 'nothing'}"
        if "sqlite3.OperationalError" in names and "locked" in str(link):
            return f"a lock is held ({link})"
    return None


_DISK_FULL = "No space left on device"
"""strerror(ENOSPC): DuckDB raises an IOException that carries it in its text, not an OSError."""
_LOCAL_DISK_ERRORS = frozenset({"_duckdb.IOException", "duckdb.IOException"})
"""DuckDB's own file errors (its spill, its COPY): the only non-OSError read for the text. A service's
answer that quotes the text (PostgreSQL behind MLflow, an S3 server) is that service's full disk: it
stays whatever transient_reason says, since the step's own disk has room."""
DISK_FULL_FIX = (
    "give the step more scratch disk: DuckDB spills what exceeds its memory_limit to the step's temporary "
    "folder ($TMPDIR), and the step writes its outputs there before it uploads them. On Argo set "
    'resources.<step>.ephemeral_storage in config.yaml (docs/performance.md, "Scratch disk", gives what each '
    "step needs at 10M and 100M rows), so the pod is placed where that much is free; on a laptop free disk or point "
    "TMPDIR at a larger one; or raise MLOPS_DUCKDB_MEMORY_LIMIT with the pod's memory so that less spills. A "
    "retry on a disk as small fails the same way, an hour in at 100M rows, so the step is not retried"
)


def disk_full_reason(error: BaseException) -> str | None:
    """The message of the step's own disk filling up in `error`'s chain (a local OSError with ENOSPC, or
    DuckDB's IOException), or None; a service's error that quotes ENOSPC is not the step's disk."""
    for link in _chain(error):
        local = isinstance(link, OSError) and type(link).__module__ == "builtins" and link.errno == errno.ENOSPC
        if local or (_qualified_names(link) & _LOCAL_DISK_ERRORS and _DISK_FULL in str(link)):
            return str(link)
    return None


def classify(error: BaseException, step: str) -> ComponentError | None:
    """The error as a ComponentError: itself, a TransientError for a known service failure, a permanent
    one for the step's own full disk, or None."""
    if isinstance(error, ComponentError):
        return error
    reason = transient_reason(error)
    if reason is None:
        if (full := disk_full_reason(error)) is not None:
            return ComponentError(step, f"the disk the step writes to is full: {full}", DISK_FULL_FIX)
        return None
    return TransientError(
        step, f"a service did not answer: {reason}", "nothing to fix in the step; check the service if retries run out"
    )


def exit_code_for(error: BaseException | None) -> int:
    """The process exit code of a step that ended with `error` (0 when it succeeded)."""
    if error is None:
        return 0
    failure = error if isinstance(error, ComponentError) else classify(error, "step")
    return failure.exit_code if failure is not None else UNEXPECTED_EXIT_CODE
