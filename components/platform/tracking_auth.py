"""The tracking server's auth configuration, and its rule that each tenant creates MLflow names
in its own namespace only: `<tenant>` or `<tenant>-...`.

This module runs inside the tracking server (MLflow's basic-auth app imports
`authenticate_owning_names`): on the cluster the server runs from the component image, on a
laptop from the same environment (devstack). `auth_config` writes the one basic_auth.ini both use.

MLflow's basic-auth app lets any user create a registered model or an experiment of any name,
and the creator gets MANAGE on it. So pricing could create `fraud-detector` before fraud's first
run, and fraud's register then failed with 403 on its own model (name squatting). The auth app
takes its authentication function from `basic_auth.ini` (`authorization_function`); this one
authenticates exactly as MLflow's does, then refuses a create or rename whose new name is
outside the user's namespace. The platform's admin is not limited. Tenant names hold no '-'
(devstack.tenants.NAME), so `fraud-` can never be the start of another tenant's namespace.

The server holds no object-store credentials (a confused deputy otherwise), so an artifact it is
asked to stream (`/model-versions/get-artifact` for a version whose source points elsewhere,
`/get-artifact`) ends in botocore's NoCredentialsError or AccessDenied, which MLflow answers with
a 500 that pages on-call (MLflowServerErrors). `guard_rights` wraps every view once, so a request
the server cannot serve for lack of rights answers 403 (404 where the object is not there),
naming the rule; any other failure stays a 500.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = [
    "AUTHORIZATION_FUNCTION",
    "DENIED_CODES",
    "MISSING_CODES",
    "MLFLOW_AUTHENTICATION_ONLY",
    "NAMING_ROUTES",
    "NO_RIGHTS_RULE",
    "auth_config",
    "authenticate_owning_names",
    "guard_rights",
    "named_by",
    "owns",
    "rights_status",
]

AUTHORIZATION_FUNCTION = "components.platform.tracking_auth:authenticate_owning_names"
MLFLOW_AUTHENTICATION_ONLY = "mlflow.server.auth:authenticate_request_basic_auth"

# (route suffix, the body field that names what is created) for the POSTs that create or rename
NAMING_ROUTES = (
    ("/mlflow/registered-models/create", "name"),
    ("/mlflow/registered-models/rename", "new_name"),
    ("/mlflow/experiments/create", "name"),
    ("/mlflow/experiments/update", "new_name"),
)


def auth_config(database_uri: str, *, default_permission: str = "NO_PERMISSIONS", tenant_names: bool = True) -> str:
    """basic_auth.ini. The admin comes from MLFLOW_AUTH_ADMIN_USERNAME and _PASSWORD (Secrets),
    never from this file; `database_uri` may leave its password to libpq's PGPASSWORD.
    MLflow ships default_permission READ: every user would read every tenant's runs."""
    function = AUTHORIZATION_FUNCTION if tenant_names else MLFLOW_AUTHENTICATION_ONLY
    lines = [
        "[mlflow]",
        f"default_permission = {default_permission}",
        f"database_uri = {database_uri}",
        f"authorization_function = {function}",
        "grant_default_workspace_access = false",
    ]
    return "\n".join(lines) + "\n"


def owns(user: str, name: str) -> bool:
    """Whether `name` is in `user`'s namespace."""
    return name == user or name.startswith(f"{user}-")


def named_by(method: str, path: str, body: dict[str, Any]) -> str | None:
    """The name a request would create or rename to, or None if it names nothing."""
    if method != "POST":
        return None
    for suffix, field in NAMING_ROUTES:
        if path.endswith(suffix) and isinstance(body.get(field), str) and body[field]:
            return str(body[field])
    return None


# botocore's error codes for "these credentials may not" and for "there is nothing there"
DENIED_CODES = frozenset({"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"})
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404"})
NO_RIGHTS_RULE = (
    "the tracking server streams artifacts only from stores it holds rights to, and it holds none of a"
    " tenant's: download the model with your own credentials from the version's source"
)


def rights_status(error: BaseException) -> int | None:
    """403 for an object-store error that means no rights, 404 for one that means no object, else None."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return 403
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        return 403 if code in DENIED_CODES else 404 if code in MISSING_CODES else None
    return None


def _guarded(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        from flask import jsonify, make_response

        try:
            return view(*args, **kwargs)
        except Exception as error:
            status = rights_status(error)
            if status is None:
                raise
            code = "PERMISSION_DENIED" if status == 403 else "RESOURCE_DOES_NOT_EXIST"
            return make_response(jsonify(error_code=code, message=NO_RIGHTS_RULE), status)

    guarded.__mlops_rights_guard__ = True  # type: ignore[attr-defined]
    return guarded


def guard_rights(app: Any) -> None:
    """Wrap each of the app's views (once) so that lacking rights answers 403/404, never 500.

    Error handlers cannot be added once the app has served (Flask's setup methods refuse), and the
    auth app gives no earlier hook; replacing a view in `view_functions` is allowed at any time."""
    for endpoint, view in list(app.view_functions.items()):
        if not getattr(view, "__mlops_rights_guard__", False):
            app.view_functions[endpoint] = _guarded(view)


def authenticate_owning_names() -> Any:
    """MLflow's basic authentication, then the namespace rule (a 403 Response when broken)."""
    from flask import current_app, jsonify, make_response, request
    from mlflow.server.auth import auth_config, authenticate_request_basic_auth
    from werkzeug.datastructures import Authorization

    guard_rights(current_app)
    authorization = authenticate_request_basic_auth()
    if not isinstance(authorization, Authorization) or authorization.username == auth_config.admin_username:
        return authorization
    body = request.get_json(silent=True, cache=True) if request.is_json else None
    name = named_by(request.method, request.path, body if isinstance(body, dict) else {})
    user = str(authorization.username)
    if name is None or owns(user, name):
        return authorization
    message = (
        f"user {user!r} may create MLflow names {user!r} or '{user}-...' only, not {name!r}:"
        f" another tenant's namespace is not yours to take; name it '{user}-<something>'"
    )
    return make_response(jsonify(error_code="PERMISSION_DENIED", message=message), 403)
