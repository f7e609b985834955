"""Test-only: Kubernetes RBAC semantics, evaluated in Python because no API server runs here.

What the API server's RBAC authorizer answers for one request, from the Roles, ClusterRoles,
RoleBindings and ClusterRoleBindings a render holds (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac):

- a request is allowed when any rule reached through a binding whose subjects match the caller
  allows it; there are no deny rules, so what nothing grants is refused;
- a RoleBinding grants its Role, or the ClusterRole it references, in the binding's namespace
  only; a ClusterRoleBinding grants its ClusterRole in every namespace and cluster-wide;
- subjects: User and Group by name; ServiceAccount by namespace (the binding's when omitted) and
  name. A ServiceAccount authenticates as `system:serviceaccount:<ns>:<name>` in the groups
  `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`;
- a rule matches when its verbs, apiGroups and resources hold the request's (or "*"): resources
  name a subresource as "pods/log", "*/log" or "pods/*"; `resourceNames` limits the rule to those
  names, so a request without one (create of a top-level object, list, watch) never matches it;
  nonResourceURLs ("/apis", "/healthz/*") only count through ClusterRoles bound cluster-wide;
- an aggregated ClusterRole holds the rules of every ClusterRole its selectors match;
- every cluster also has the bootstrap policy's discovery and self-review roles bound to
  `system:authenticated` (BOOTSTRAP below), which kubectl and the clients lean on.

`request_info` turns an HTTP method and path into the request the authorizer sees, as the API
server's RequestInfoFactory does, so recorded client traffic can be evaluated directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

RBAC = "rbac.authorization.k8s.io"
AUTHENTICATED = "system:authenticated"

# The bootstrap policy's roles every authenticated caller holds (kubectl discovery, self reviews).
BOOTSTRAP: list[dict[str, Any]] = [
    {
        "kind": "ClusterRole",
        "metadata": {"name": "system:discovery"},
        "rules": [
            {
                "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz",
                                    "/openapi", "/openapi/*", "/version", "/version/"],
                "verbs": ["get"],
            }
        ],
    },
    {
        "kind": "ClusterRole",
        "metadata": {"name": "system:basic-user"},
        "rules": [
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"],
            },
            # `kubectl auth whoami` (Kubernetes >= 1.28, kubernetes/kubernetes#116274): what mlops promote
            # asks before a production sign-off (mlops/kube.py Cluster.identity)
            {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
        ],
    },
    *[
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": AUTHENTICATED}],
        }
        for name in ("system:discovery", "system:basic-user")
    ],
]  # fmt: skip


@dataclass(frozen=True)
class Identity:
    """Who calls: a user name and the groups the authenticator put it in."""

    user: str
    groups: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return self.user


def service_account(namespace: str, name: str) -> Identity:
    return Identity(
        f"system:serviceaccount:{namespace}:{name}",
        frozenset({"system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED}),
    )


def person(name: str, *groups: str) -> Identity:
    """A person signed in through the cluster's OIDC or certificates: their name and groups."""
    return Identity(name, frozenset({*groups, AUTHENTICATED}))


@dataclass(frozen=True)
class Request:
    """What the authorizer sees: a resource request (group "" is the core API) or a non-resource path."""

    verb: str
    resource: str = ""
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    def __str__(self) -> str:
        if self.path:
            return f"{self.verb} {self.path}"
        what = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = f" in {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {what}.{self.group or 'core'}{f' {self.name}' if self.name else ''}{where}"


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def request_info(method: str, url: str) -> Request:
    """The request the API server authorizes for an HTTP call (RequestInfoFactory.NewRequestInfo)."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    query = parse_qs(parts.query)
    if not segments or segments[0] not in ("api", "apis"):
        return Request(verb=method.lower() if method != "GET" else "get", path=parts.path or "/")
    group, rest = ("", segments[2:]) if segments[0] == "api" else ("/".join(segments[1:2]), segments[3:])
    if not rest:
        return Request(verb="get", path=parts.path)  # discovery of a group version
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]  # the Namespace object itself (and its status, finalize) carries it too
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource, name, subresource = rest[0], (rest[1] if len(rest) > 1 else ""), (rest[2] if len(rest) > 2 else "")
    if method == "GET":
        watching = query.get("watch", ["false"])[0] in ("true", "1")
        verb = "get" if name else ("watch" if watching else "list")
        for term in ",".join(query.get("fieldSelector", [])).split(",") if not name else []:
            key, _, value = term.partition("=")  # `kubectl get NAME -w`: a list and watch of one name
            if key == "metadata.name" and value.lstrip("="):
                name = value.lstrip("=")
    elif method == "DELETE" and not name:
        verb = "deletecollection"
    else:
        verb = _VERBS[method]
    return Request(verb, resource, group, subresource, namespace, name)


def _matches(values: list[str] | None, value: str) -> bool:
    return values is not None and ("*" in values or value in values)


def _resource_matches(resources: list[str], request: Request) -> bool:
    whole = f"{request.resource}/{request.subresource}" if request.subresource else request.resource
    for entry in resources:
        if entry in ("*", whole):
            return True
        if request.subresource and entry in (f"*/{request.subresource}", f"{request.resource}/*"):
            return True
    return False


def _url_matches(urls: list[str], path: str) -> bool:
    return any(u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])) for u in urls)


def rule_allows(rule: dict[str, Any], request: Request) -> bool:
    """One PolicyRule against one request (rbac/v1 helpers: VerbMatches, ResourceMatches, ...)."""
    if not _matches(rule.get("verbs"), request.verb):
        return False
    if request.path:
        return _url_matches(rule.get("nonResourceURLs") or [], request.path)
    if not _matches(rule.get("apiGroups"), request.group):
        return False
    if not _resource_matches(rule.get("resources") or [], request):
        return False
    names = rule.get("resourceNames") or []
    return not names or request.name in names


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if (operator == "In" and not (present and labels[key] in values)) or (operator == "Exists" and not present):
            return False
        if (operator == "NotIn" and present and labels[key] in values) or (operator == "DoesNotExist" and present):
            return False
    return True


@dataclass(frozen=True)
class Grant:
    """Why a request is allowed: the binding, the role and the rule that allow it."""

    binding: str
    role: str
    rule: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.binding} -> {self.role}"


@dataclass
class Rbac:
    """The RBAC objects of a cluster; `grant` answers one request for one caller."""

    roles: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    cluster_roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    role_bindings: list[dict[str, Any]] = field(default_factory=list)
    cluster_role_bindings: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, objects: list[dict[str, Any]], *, bootstrap: bool = True) -> Rbac:
        rbac = cls()
        for obj in [*(BOOTSTRAP if bootstrap else []), *objects]:
            kind, meta = obj.get("kind"), obj.get("metadata", {})
            if kind == "Role":
                rbac.roles[(meta.get("namespace", ""), meta["name"])] = list(obj.get("rules") or [])
            elif kind == "ClusterRole":
                rbac.cluster_roles[meta["name"]] = obj
            elif kind == "RoleBinding":
                rbac.role_bindings.append(obj)
            elif kind == "ClusterRoleBinding":
                rbac.cluster_role_bindings.append(obj)
        return rbac

    def cluster_role_rules(self, name: str) -> list[dict[str, Any]]:
        """A ClusterRole's rules; an aggregated one's are those of every ClusterRole its selectors match."""
        role = self.cluster_roles.get(name)
        if role is None:
            return []
        aggregation = role.get("aggregationRule")
        if not aggregation:
            return list(role.get("rules") or [])
        selectors = aggregation.get("clusterRoleSelectors") or []
        return [
            rule
            for other_name, other in sorted(self.cluster_roles.items())
            if other_name != name and any(_selects(s, other["metadata"].get("labels") or {}) for s in selectors)
            for rule in other.get("rules") or []
        ]

    def _rules(self, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
        if ref.get("kind") == "ClusterRole":
            return self.cluster_role_rules(ref["name"])
        return self.roles.get((namespace, ref["name"]), [])

    @staticmethod
    def _subject_matches(subject: dict[str, Any], who: Identity, binding_namespace: str) -> bool:
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User":
            return who.user == name
        if kind == "Group":
            return name in who.groups
        if kind == "ServiceAccount":
            namespace = subject.get("namespace") or binding_namespace
            return who.user == f"system:serviceaccount:{namespace}:{name}"
        return False

    def grant(self, who: Identity, request: Request) -> Grant | None:
        """The first grant that allows the request, or None: RBAC refuses it."""
        for binding in self.cluster_role_bindings:
            if any(self._subject_matches(s, who, "") for s in binding.get("subjects") or []):
                for rule in self._rules(binding["roleRef"], ""):
                    if rule_allows(rule, request):
                        return Grant(
                            f"ClusterRoleBinding {binding['metadata']['name']}", binding["roleRef"]["name"], rule
                        )
        if request.path or not request.namespace:
            return None  # what RoleBindings grant is namespaced
        for binding in self.role_bindings:
            namespace = binding["metadata"].get("namespace", "")
            if namespace != request.namespace:
                continue
            if any(self._subject_matches(s, who, namespace) for s in binding.get("subjects") or []):
                for rule in self._rules(binding["roleRef"], namespace):
                    if rule_allows(rule, request):
                        ref = binding["roleRef"]
                        return Grant(
                            f"RoleBinding {namespace}/{binding['metadata']['name']}",
                            f"{ref['kind']} {ref['name']}",
                            rule,
                        )
        return None

    def allows(self, who: Identity, request: Request) -> bool:
        return self.grant(who, request) is not None
