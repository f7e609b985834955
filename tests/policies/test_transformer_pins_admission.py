"""Promote's scoring transformer, configured only as promote configures it (manifests/policies/promotion-guard.yaml).

The guard already admits only promote's transformer (its command, from the component image). What
the member still wrote was the rest of it. KServe's controller adds `--model_name`, `--predictor_host`
and `--http_port` to a custom transformer's args only where the args do not carry them already
(`utils.IncludesArg`, a prefix match), so a `--predictor_host` of the member's sends every scored
request to a predictor of theirs, whose bytes no one checked; the stand-in below, test code mirroring
that controller rule, shows it on the transformer's real parser. A pod field (hostAliases) does the
same by name; a volume or a probe's command can replace the code; a variable or a ConfigMap of theirs
moves the decision log or the feature store. On the real OPA engine (mlops.admission):

- positive control: every transformer promote renders (every reference pipeline, stage, mode and
  role) is admitted by the guard and by every installed Constraint;
- forbidden: each of those changes is refused, by a message that names it;
- broken on purpose: the guard without its args paragraph admits the `--predictor_host`, and no
  other installed Constraint refuses it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.serving.decision_record import ROLE_VARIABLE
from components.steps.promote import SCORING_FLAG
from mlops import admission, admission_parameters
from tests.policies.platform_objects import Rendered, inference_services
from tests.policies.policy_files import installed_in_prod, policy, without_paragraph

FILE = "promotion-guard.yaml"
ROOT = Path(__file__).resolve().parents[2]
TRANSFORMER_PYTHON = ROOT / ".venv-transformer" / "bin" / "python"
FORGED_HOST = "answers.attacker-team.svc.cluster.local:9000"
KSERVE_HOST = "fraud-predictor.team-a"


@pytest.fixture(scope="module")
def rule() -> Iterator[admission.Policy]:
    yield policy(FILE)


@pytest.fixture(scope="module")
def with_transformer() -> Iterator[list[Rendered]]:
    found = [item for item in inference_services() if "transformer" in item.obj["spec"]]
    assert found, "promote renders services with the scoring transformer"
    yield found


def _container(service: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = service["spec"]["transformer"]["containers"][0]
    return container


def kserve_controller_stand_in_args(args: list[str], model_name: str, predictor_host: str) -> list[str]:
    """Test code, not KServe: the controller's rule for a custom transformer's args (KServe's
    transformer reconciler, `if !utils.IncludesArg(container.Args, ...) { append }`, IncludesArg
    being `v == arg || strings.HasPrefix(v, arg)`)."""

    def includes(name: str) -> bool:
        return any(arg == name or arg.startswith(name) for arg in args)

    added = list(args)
    for name, value in (("--model_name", model_name), ("--predictor_host", predictor_host), ("--http_port", "8080")):
        if not includes(name):
            added += [name, value]
    return added


def test_the_stand_in_on_the_real_parser_shows_what_a_members_flag_would_do(with_transformer: list[Rendered]) -> None:
    """Known cases of the stand-in, parsed by the transformer's own parser in its own environment:
    promote's args reach KServe's predictor; with the member's flag added, the member's host."""
    if not TRANSFORMER_PYTHON.exists():
        pytest.fail("the transformer's environment is missing: make transformer-env")
    rendered = list(_container(with_transformer[0].obj)["args"])
    members = [*rendered, f"--predictor_host={FORGED_HOST}"]
    cases = {
        "promote's": kserve_controller_stand_in_args(rendered, "fraud", KSERVE_HOST),
        "the member's": kserve_controller_stand_in_args(members, "fraud", KSERVE_HOST),
    }
    script = (
        "import json, sys\nfrom components.serving.transformer import parser\n"
        "cases = json.loads(sys.argv[1])\n"
        "print(json.dumps({k: parser().parse_known_args(v)[0].predictor_host for k, v in cases.items()}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([str(TRANSFORMER_PYTHON), "-c", script, json.dumps(cases)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    hosts = json.loads(done.stdout.strip().splitlines()[-1])
    assert hosts == {"promote's": KSERVE_HOST, "the member's": FORGED_HOST}


def test_every_transformer_promote_renders_is_admitted(
    rule: admission.Policy, with_transformer: list[Rendered]
) -> None:
    """Positive control: the pins are what promote renders (one source: mlops/admission_parameters.py
    renders them from render_transformer), and every rendered transformer passes them."""
    pins = rule.parameters["servedBytes"]["transformer"]
    assert {
        key: pins[key] for key in admission_parameters._transformer_pins()
    } == admission_parameters._transformer_pins()
    installed = installed_in_prod()
    for item in with_transformer:
        assert rule.violations(item.obj, user=item.user) == [], item.name
        assert installed.violations(item.obj, user=item.user) == [], item.name


def _arg(value: str) -> Callable[[dict[str, Any]], None]:
    return lambda service: _container(service)["args"].append(value)


def _two_args(service: dict[str, Any]) -> None:
    _container(service)["args"] += ["--predictor_host", FORGED_HOST]


def _flag_twice(service: dict[str, Any]) -> None:
    _container(service)["args"].append("--feature-service=another_service")


def _host_alias(service: dict[str, Any]) -> None:
    service["spec"]["transformer"]["hostAliases"] = [{"ip": "10.0.0.66", "hostnames": ["fraud-predictor.team-a"]}]


def _volume(service: dict[str, Any]) -> None:
    service["spec"]["transformer"]["volumes"] = [{"name": "code", "configMap": {"name": "mine"}}]
    _container(service)["volumeMounts"] = [{"name": "code", "mountPath": "/opt/transformer/lib"}]


def _lifecycle(service: dict[str, Any]) -> None:
    _container(service)["lifecycle"] = {"postStart": {"exec": {"command": ["sh", "-c", "kill 1"]}}}


def _probe_exec(service: dict[str, Any]) -> None:
    _container(service)["readinessProbe"] = {"exec": {"command": ["sh", "-c", "python -m http.server 8080 &"]}}


def _env_from(service: dict[str, Any]) -> None:
    _container(service)["envFrom"].append({"configMapRef": {"name": "my-feature-store"}})


def _log_elsewhere(service: dict[str, Any]) -> None:
    for entry in _container(service)["env"]:
        if entry["name"] == "MLOPS_DECISION_LOG_URI":
            entry["value"] = "s3://decisions/someone-else/"


def _no_log(service: dict[str, Any]) -> None:
    _container(service)["env"] = [e for e in _container(service)["env"] if e["name"] != "MLOPS_DECISION_LOG_URI"]


def _variable_twice(service: dict[str, Any]) -> None:
    _container(service)["env"].append({"name": "MLOPS_SERVING_ROLE", "value": "champion"})


def _own_variable(service: dict[str, Any]) -> None:
    _container(service)["env"].append({"name": "MLOPS_FEAST_REDIS_HOST", "value": "redis.attacker-team"})


def _expanded_secret(service: dict[str, Any]) -> None:
    _container(service)["args"] = [
        f'{SCORING_FLAG}={{"unknown_entity": "$(AWS_SECRET_ACCESS_KEY)"}}' if arg.startswith(SCORING_FLAG) else arg
        for arg in _container(service)["args"]
    ]


def _log_off(service: dict[str, Any], switch: tuple[str, str] = ("decision_log", "enabled")) -> None:
    args = _container(service)["args"]
    (index,) = [i for i, arg in enumerate(args) if arg.startswith(f"{SCORING_FLAG}=")]
    scoring = json.loads(args[index].removeprefix(f"{SCORING_FLAG}="))
    scoring[switch[0]][switch[1]] = False
    args[index] = f"{SCORING_FLAG}={json.dumps(scoring)}"


def _second_container(service: dict[str, Any]) -> None:
    service["spec"]["transformer"]["containers"].append(copy.deepcopy(_container(service)) | {"name": "twin"})


def _renamed(service: dict[str, Any]) -> None:
    _container(service)["name"] = "scorer"


def _probe_elsewhere(service: dict[str, Any]) -> None:
    _container(service)["readinessProbe"]["httpGet"]["host"] = "always-ready.attacker-team"


def _uri_before_namespace(service: dict[str, Any]) -> None:
    env = _container(service)["env"]
    (uri,) = [e for e in env if e["name"] == "MLOPS_DECISION_LOG_URI"]
    env.remove(uri)
    env.insert(0, uri)


def _other_role(service: dict[str, Any]) -> None:
    for entry in _container(service)["env"]:
        if entry["name"] == ROLE_VARIABLE:
            entry["value"] = "champion" if entry["value"] == "canary" else "canary"


CHANGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "--predictor_host=": (_arg(f"--predictor_host={FORGED_HOST}"), f'"--predictor_host={FORGED_HOST}"'),
    "--predictor_host as two args": (_two_args, '"--predictor_host"'),
    "--feature-store-dir (a local store)": (_arg("--feature-store-dir=/mnt/mine"), '"--feature-store-dir=/mnt/mine"'),
    "an abbreviated flag": (_arg("--feature-store=/mnt/mine"), '"--feature-store=/mnt/mine"'),
    "a secret expanded into an argument": (_expanded_secret, "refers to a variable"),
    "a second container": (_second_container, "is one container"),
    "a container of another name": (_renamed, "is one container"),
    "a probe of another host": (_probe_elsewhere, "asks another host"),
    "the log's URI before the namespace it expands": (_uri_before_namespace, "promote's order"),
    "the other serving role": (_other_role, "but this revision serves as"),
    "a flag twice": (_flag_twice, "--feature-service twice"),
    "hostAliases": (_host_alias, "spec.transformer.hostAliases"),
    "a volume": (_volume, "volumes"),
    "a lifecycle hook": (_lifecycle, "lifecycle"),
    "a probe that runs a command": (_probe_exec, "readinessProbe runs a command"),
    "a ConfigMap of the member's": (_env_from, "envFrom"),
    "the decision log elsewhere": (_log_elsewhere, "MLOPS_DECISION_LOG_URI"),
    "no decision log": (_no_log, "MLOPS_DECISION_LOG_URI once"),
    "a variable twice": (_variable_twice, "MLOPS_SERVING_ROLE once"),
    "a variable promote never renders": (_own_variable, "MLOPS_FEAST_REDIS_HOST"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_transformer_configured_otherwise_is_refused(
    rule: admission.Policy, with_transformer: list[Rendered], change: str
) -> None:
    mutate, named = CHANGES[change]
    for item in with_transformer:
        changed = copy.deepcopy(item.obj)
        mutate(changed)
        refused = rule.violations(changed, user=item.user)
        assert any(named in message for message in refused), (item.name, refused)


def test_a_production_transformer_keeps_its_decision_log(
    rule: admission.Policy, with_transformer: list[Rendered]
) -> None:
    """The audit's record: off is refused in production, admitted at staging (a pipeline may run a
    staging service without a log), the positive control being the rendered services above."""
    for item in with_transformer:
        changed = copy.deepcopy(item.obj)
        _log_off(changed)
        refused = [m for m in rule.violations(changed, user=item.user) if LOG_RULE in m]
        assert bool(refused) == ("(production" in item.source), (item.name, refused)


def test_the_guard_reads_the_decision_log_switch_and_the_role_where_the_transformer_does(tmp_path: Path) -> None:
    """The switch and the role's variable are Constraint parameters rendered from promote
    and the settings: each is where the transformer reads it (ScoringSettings from the flag's JSON; the
    decision log's role from its variable), so a rename moves the guard with it instead of silencing it."""
    from components.config import ScoringSettings
    from components.decision_log_settings import DecisionLogSettings
    from components.serving import decision_log
    from components.serving.decision_record import URI_VARIABLE

    pins = admission_parameters._served_bytes()["transformer"]
    assert pins["scoringFlag"] == SCORING_FLAG and pins["roleVariable"] == ROLE_VARIABLE
    section, field = pins["decisionLogSwitch"]
    assert ScoringSettings.model_validate({section: {field: False}}).decision_log.enabled is False
    env = {URI_VARIABLE: str(tmp_path), pins["roleVariable"]: "not-a-role"}
    refused = decision_log.from_environment("fraud", "user_id", "ab" * 32, 0.5, 2, DecisionLogSettings(), env=env)
    assert isinstance(refused, decision_log.Refused) and ROLE_VARIABLE in refused.reason


LOG_RULE = "a production transformer logs its decisions"
ROLE_RULE = "but this revision serves as"


def _misread(rule: admission.Policy, key: str, value: Any) -> admission.Policy:
    constraint = copy.deepcopy(rule.constraint)
    constraint["spec"]["parameters"]["servedBytes"]["transformer"][key] = value
    return admission.Policy(template=rule.template, constraint=constraint)


def test_the_decision_log_and_role_rules_read_their_parameters(
    rule: admission.Policy, with_transformer: list[Rendered]
) -> None:
    """Broken on purpose, so it is the parameter, not a literal of the Rego's, that each rule reads:
    with the switch's path rendered wrong, the log rule finds no explicit `true` and refuses every
    production transformer, the rendered ones included (it fails closed); with the role's variable
    rendered wrong, the role rule no longer sees the other role."""
    production = [item for item in with_transformer if "(production" in item.source]
    assert production, "a production transformer is rendered"
    wrong_switch = _misread(rule, "decisionLogSwitch", ["decision_log", "renamed"])
    wrong_role = _misread(rule, "roleVariable", "MLOPS_RENAMED_ROLE")
    for item in production:
        assert not any(LOG_RULE in m for m in rule.violations(item.obj, user=item.user)), item.name
        assert any(LOG_RULE in m for m in wrong_switch.violations(item.obj, user=item.user)), item.name
        changed = copy.deepcopy(item.obj)
        _log_off(changed)
        assert any(LOG_RULE in m for m in rule.violations(changed, user=item.user)), item.name
    for item in with_transformer:
        changed = copy.deepcopy(item.obj)
        _other_role(changed)
        assert any(ROLE_RULE in m for m in rule.violations(changed, user=item.user)), item.name
        assert not any(ROLE_RULE in m for m in wrong_role.violations(changed, user=item.user)), item.name


def _parameters_read(rego: str) -> set[tuple[str, ...]]:
    """Each parameter path the guard's rules read without a default: `input.parameters.a.b` and the
    transformer pins' `pins.x`, less the parents of others and what `object.get` gives a default."""
    import re

    read = {tuple(m.split(".")) for m in re.findall(r"input\.parameters\.([A-Za-z]+(?:\.[A-Za-z]+)*)", rego)}
    read |= {("servedBytes", "transformer", m) for m in re.findall(r"\bpins\.([A-Za-z]+)", rego)}
    return {path for path in read if not any(other[: len(path)] == path and other != path for other in read)}


def test_a_parameter_missing_refuses_every_service_instead_of_silencing_its_rule(
    rule: admission.Policy, with_transformer: list[Rendered]
) -> None:
    """Fail closed (helper-94): an old Constraint during a rollout, or Gatekeeper pruning an undeclared
    field, leaves a rule without its parameter, and a rule whose parameter is undefined never fires.
    Each parameter the rules read is taken away in turn: the rendered services, admitted with all of
    them (the positive control), are then refused by a message naming it."""
    rego = rule.template["spec"]["targets"][0]["rego"]
    read = _parameters_read(rego)
    assert ("servedBytes", "transformer", "roleVariable") in read and ("minHoldoutAuc",) in read, read
    item = next(item for item in with_transformer if "(production" in item.source)
    assert not any("is missing" in m for m in rule.violations(item.obj, user=item.user))
    for path in sorted(read):
        constraint = copy.deepcopy(rule.constraint)
        parent = constraint["spec"]["parameters"]
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        without = admission.Policy(template=rule.template, constraint=constraint)
        refused = without.violations(item.obj, user=item.user)
        assert any(f"parameter {'.'.join(path)} is missing" in m for m in refused), (path, refused)


def test_without_the_args_paragraph_the_members_predictor_is_admitted(with_transformer: list[Rendered]) -> None:
    """Broken on purpose: the guard without its args rule admits the member's --predictor_host, and
    no other installed Constraint refuses it, so the rule above is what stands in the way."""
    rule = policy(FILE)
    broken = without_paragraph(rule, "not rendered_flag(arg)")
    installed = installed_in_prod()
    others = admission.PolicySet(policies=[p for p in installed.policies if p.name != rule.name])
    assert len(others.policies) == len(installed.policies) - 1, "the platform installs the guard"
    for item in with_transformer:
        changed = copy.deepcopy(item.obj)
        _arg(f"--predictor_host={FORGED_HOST}")(changed)
        assert rule.violations(changed, user=item.user) != [], item.name
        assert broken.violations(changed, user=item.user) == [], item.name
        assert others.violations(changed, user=item.user) == [], item.name
