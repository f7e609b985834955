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
"""

from __future__ import annotations

from typing import Any

AUTHORIZATION_FUNCTION = "components.tracking_auth:authenticate_owning_names"
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


def authenticate_owning_names() -> Any:
    """MLflow's basic authentication, then the namespace rule (a 403 Response when broken)."""
    from flask import jsonify, make_response, request
    from mlflow.server.auth import auth_config, authenticate_request_basic_auth
    from werkzeug.datastructures import Authorization

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
