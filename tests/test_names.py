"""Names that become packages, roles, users and key prefixes: checked whole, and never a name already in use."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.errors import ComponentError
from devstack.tenants import check_name
from pipelines.scaffold import scaffold_project


@pytest.mark.parametrize("name", ["fraud", "pricing2", "team7"])
def test_a_plain_tenant_name_is_accepted(name: str) -> None:
    check_name(name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("fraud\n", "not a lowercase identifier"),  # "$" matched before the newline
        ("Fraud", "not a lowercase identifier"),
        ("fr-aud", "not a lowercase identifier"),
        ("admin", "reserved"),  # MLflow's admin: `tenant add admin` reset its password
        ("postgres", "reserved"),  # the superuser: `tenant add postgres` gave a superuser login
        ("mlops", "reserved"),
        ("default", "reserved"),
        ("pgsql", "reserved"),
    ],
)
def test_a_tenant_name_that_is_malformed_or_reserved_is_refused(name: str, reason: str) -> None:
    with pytest.raises(ComponentError, match=reason):
        check_name(name)


@pytest.mark.parametrize(
    ("name", "collision"),
    [
        ("runtime", "pipelines/runtime"),  # `mlops new runtime` once broke every step
        ("task", "pipelines/task"),
        ("pipelines", "installed module 'pipelines'"),  # a team package may never shadow the library's
        ("json", "standard-library"),
        ("pandas", "installed module"),
        ("churn\n", "not lowercase letters"),
    ],
)
def test_a_pipeline_name_that_shadows_a_module_is_refused(tmp_path: Path, name: str, collision: str) -> None:
    out = tmp_path / "project"
    with pytest.raises(ComponentError, match=collision):
        scaffold_project(name, out, owner="team@bank.internal")
    assert not out.exists()  # nothing half-written


def test_an_existing_project_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "notes.md").write_text("mine")
    with pytest.raises(ComponentError, match="not empty"):
        scaffold_project("churn", tmp_path / "project", owner="team@bank.internal")
    assert (tmp_path / "project" / "notes.md").read_text() == "mine"


def test_promote_checks_names_whole() -> None:
    from components.steps.promote import DNS_LABEL, RUN_ID

    assert RUN_ID.fullmatch("a" * 32) and not RUN_ID.fullmatch("a" * 32 + "\n")
    assert DNS_LABEL.fullmatch("fraud-detector") and not DNS_LABEL.fullmatch("fraud-detector\n")


def test_mlflow_names_belong_to_the_tenant_whose_name_starts_them() -> None:
    from components.platform.tracking_auth import named_by, owns

    assert owns("fraud", "fraud") and owns("fraud", "fraud-detector")
    assert not owns("pricing", "fraud-detector") and not owns("fraud", "fraudx-model") and not owns("fraud", "fraudx")
    api = "/api/2.0/mlflow"
    assert named_by("POST", f"{api}/registered-models/create", {"name": "fraud-detector"}) == "fraud-detector"
    assert named_by("POST", "/ajax-api/2.0/mlflow/experiments/create", {"name": "x"}) == "x"
    assert named_by("POST", f"{api}/registered-models/rename", {"name": "a", "new_name": "b"}) == "b"
    assert named_by("POST", f"{api}/experiments/update", {"experiment_id": "1", "new_name": "c"}) == "c"
    assert named_by("POST", f"{api}/experiments/update", {"experiment_id": "1"}) is None
    assert named_by("GET", f"{api}/registered-models/get", {"name": "fraud-detector"}) is None
    assert named_by("POST", f"{api}/runs/create", {"experiment_id": "1"}) is None


def test_the_tracking_server_answers_lack_of_rights_with_403_or_404() -> None:
    """issue 29: botocore's no-rights errors map to 403, a missing object to 404, anything else
    stays an error (None: still a 500, which is a real fault worth paging on)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from components.platform.tracking_auth import rights_status

    def client_error(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")

    assert rights_status(client_error("NoSuchKey")) == 404
    assert rights_status(NoCredentialsError()) == 403
    assert rights_status(client_error("AccessDenied")) == 403
    assert rights_status(client_error("InvalidAccessKeyId")) == 403
    assert rights_status(client_error("InternalError")) is None
    assert rights_status(EndpointConnectionError(endpoint_url="http://x")) is None
    assert rights_status(ValueError("x")) is None
