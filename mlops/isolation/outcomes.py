"""What one isolation probe observed: the outcomes, the row type, and how a raise is classified.

A probe returns a LEAK's description or raises. `classify` turns the raise into DENIED (the
service refused the attacker) or ERROR (it failed for another reason, which proves nothing).
An authentication failure is never DENIED: with broken credentials every path would be refused,
and a check that counted that as isolation would pass without testing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AUTHENTICATION_FAILED", "DENIED", "ERROR", "LEAK", "OK", "Attempt", "Denied", "classify"]

DENIED, LEAK, ERROR, OK = "DENIED", "LEAK", "ERROR", "OK"
AUTHENTICATION_FAILED = "authentication failed: the attacker's own credentials do not work, so this proves nothing"


@dataclass(frozen=True)
class Attempt:
    """One row of the check: the path tried, what isolation wants, what happened, and why."""

    path: str
    expected: str
    observed: str
    detail: str


class Denied(Exception):
    """The service refused: the outcome isolation wants."""


def classify(path: str, call: Callable[[], str]) -> Attempt:
    """Run one probe: it returns a LEAK's description, or raises; classify the raise."""
    import redis
    from botocore.exceptions import ClientError
    from mlflow.exceptions import MlflowException

    try:
        leak = call()
    except Denied as denied:
        return Attempt(path, DENIED, DENIED, str(denied))
    except redis.exceptions.AuthenticationError as error:
        return Attempt(path, DENIED, ERROR, f"Redis {str(error)[:60]}: {AUTHENTICATION_FAILED}")
    except redis.exceptions.NoPermissionError as error:
        return Attempt(path, DENIED, DENIED, f"Redis {str(error)[:100]}")
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return Attempt(path, DENIED, ERROR, f"S3 {code}: {AUTHENTICATION_FAILED}")
        if code in ("AccessDenied", "403", "Forbidden"):
            return Attempt(path, DENIED, DENIED, f"S3 {code}")
        return Attempt(path, DENIED, ERROR, f"S3 {code}: {error}")
    except MlflowException as error:
        text = str(error)
        if "UNAUTHENTICATED" in text or "401" in text:
            return Attempt(path, DENIED, ERROR, f"MLflow 401: {AUTHENTICATION_FAILED}")
        if "PERMISSION_DENIED" in text or "403" in text or "Permission denied" in text:
            return Attempt(path, DENIED, DENIED, "MLflow 403 PERMISSION_DENIED")
        return Attempt(path, DENIED, ERROR, f"MLflow: {text[:160]}")
    except Exception as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        if "password authentication failed" in text.lower():
            return Attempt(path, DENIED, ERROR, f"PostgreSQL: {AUTHENTICATION_FAILED}")
        if "permission denied" in text.lower():
            return Attempt(path, DENIED, DENIED, f"PostgreSQL: {text[:160]}")
        return Attempt(path, DENIED, ERROR, f"{type(error).__name__}: {text[:160]}")
    return Attempt(path, DENIED, LEAK, leak)
