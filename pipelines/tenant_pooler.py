"""Each tenant's own PgBouncer on the cluster, rendered from its declaration (manifests/tenants/tenants.yaml).

Issue 29, "one tenant can fill the shared PgBouncer's client slots": PgBouncer's `max_client_conn`
counts every client socket, and the per-role caps of the PgBouncer we run limit server connections
only (client caps per user or database need PgBouncer 1.24). So the platform's PgBouncer
(manifests/base/postgres/pgbouncer.yaml) keeps the platform's services (MLflow, Katib's DB manager,
Argo's archive, the shared mlops-pipelines namespace), and each tenant gets a PgBouncer of its own
in the platform namespace, `pgbouncer-<tenant>`:

- it routes only the tenant's Feast registry database and admits only the tenant's role and its
  reader (the transformer's, components/platform/readonly.py), whose passwords its init container writes
  from the Secrets CloudNativePG sets the roles' passwords from (pipelines/cluster.py:
  postgres_roles), so no new Secret;
- its `max_client_conn` is the tenant's quota.pods times components.platform.tenant_pool.CLIENTS_PER_POD,
  its server connections the role's cap (components.platform.settings.TENANT_SERVER_CONNECTIONS);
- its NetworkPolicy admits the tenant's namespace only (by the Namespace's tenant label, which
  only the platform sets), and a policy in the tenant's namespace
  lets its pods out to it; the tenant's mlops-platform ConfigMap names it (cluster_settings).

The platform's copy of PgBouncer's settings is pipelines/cluster.py (pgbouncer_config); the
tenant pooler's pgbouncer.ini is components.platform.tenant_pool.tenant_pgbouncer_ini, which the loopback
stack's tenant poolers (devstack/tenant_pgbouncer.py) use too. It is rendered as a Deployment, not a
CloudNativePG Pooler: the Pooler CRD's schema is not in the schema folder `mlops lint` validates
against, and the platform's own PgBouncer is a Deployment of the same image.
"""

from __future__ import annotations

from typing import Any, Literal

from components.platform.readonly import reader_database_secret, reader_name
from components.platform.tenant_pool import client_connections, tenant_pgbouncer_ini
from pipelines.cluster import PLATFORM_NAMESPACE, POSTGRES_CLUSTER, POSTGRES_IMAGE
from pipelines.pod_security import restricted_container, restricted_pod

__all__ = [
    "NAME_LABEL",
    "PGBOUNCER_IMAGE",
    "PGBOUNCER_UID",
    "POOLER_APP",
    "PORT",
    "TENANT_LABEL",
    "USERLIST",
    "network_policy",
    "pooler_host",
    "pooler_ini",
    "pooler_labels",
    "pooler_name",
    "postgres_from_tenant_poolers",
    "tenant_pooler",
    "tenant_pooler_egress",
]

PGBOUNCER_IMAGE = "registry.mlops.internal/mirror/pgbouncer/pgbouncer:1.23.1"
"""The platform's PgBouncer image (manifests/base/postgres/pgbouncer.yaml; a test holds them equal)."""
PGBOUNCER_UID = 70
PORT = 5432
NAME_LABEL = "app.kubernetes.io/name"
POOLER_APP = "tenant-pgbouncer"
TENANT_LABEL = "mlops.private-platform.io/tenant"
USERLIST = "/etc/pgbouncer/userlist/userlist.txt"

# The users file, written at each start from the roles' passwords (their Secrets): the tenant's
# role and its reader (the scoring transformer's, components/platform/readonly.py), no other. PgBouncer
# authenticates the client with SCRAM against it, then PostgreSQL with it.
_WRITE_USERLIST = """set -eu
umask 077
printf '"%s" "%s"\\n"%s" "%s"\\n' "$TENANT" "$PGPASSWORD" "$READER" "$READER_PASSWORD" \\
  > /etc/pgbouncer/userlist/userlist.txt
"""


def pooler_name(tenant: str) -> str:
    """The tenant pooler's Deployment, ConfigMap and Service: `pgbouncer-<tenant>` in the platform namespace."""
    return f"pgbouncer-{tenant}"


def pooler_host(tenant: str) -> str:
    """The in-cluster host of the tenant's pooler, as its mlops-platform ConfigMap names it."""
    return f"{pooler_name(tenant)}.{PLATFORM_NAMESPACE}.svc.cluster.local"


def pooler_labels(tenant: str) -> dict[str, str]:
    return {NAME_LABEL: POOLER_APP, TENANT_LABEL: tenant, "app.kubernetes.io/part-of": "private-mlops"}


def pooler_ini(tenant: str, pods: int) -> str:
    """The tenant pooler's pgbouncer.ini: its registry database on the cluster's primary."""
    return tenant_pgbouncer_ini(
        tenant,
        server=f"host={POSTGRES_CLUSTER}-rw.{PLATFORM_NAMESPACE}.svc port={PORT}",
        listen_addr="0.0.0.0",
        listen_port=PORT,
        auth_file=USERLIST,
        max_client_conn=client_connections(pods),
    )


def tenant_pooler(tenant: str, pods: int) -> list[dict[str, Any]]:
    """The platform namespace's objects of `tenant`'s own PgBouncer: its ConfigMap, Deployment,
    Service and the NetworkPolicy that admits the tenant's namespace only."""
    name = pooler_name(tenant)
    labels = pooler_labels(tenant)
    selector = {NAME_LABEL: POOLER_APP, TENANT_LABEL: tenant}
    metadata = {"name": name, "namespace": PLATFORM_NAMESPACE, "labels": dict(labels)}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": dict(metadata),
            "data": {"pgbouncer.ini": pooler_ini(tenant, pods), "write-userlist.sh": _WRITE_USERLIST},
        },
        _deployment(tenant, name, metadata, selector),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": dict(metadata),
            "spec": {"selector": dict(selector), "ports": [{"name": "postgres", "port": PORT, "targetPort": PORT}]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"{name}-from-its-tenant", "namespace": PLATFORM_NAMESPACE},
            "spec": {
                "podSelector": {"matchLabels": dict(selector)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {
                        # the tenant's Namespace carries its name in TENANT_LABEL (pipelines/tenancy.py)
                        "from": [{"namespaceSelector": {"matchLabels": {TENANT_LABEL: tenant}}}],
                        "ports": [{"protocol": "TCP", "port": PORT}],
                    }
                ],
                "egress": [
                    {
                        "to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": POSTGRES_CLUSTER}}}],
                        "ports": [{"protocol": "TCP", "port": PORT}],
                    },
                    {
                        "to": [
                            {
                                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    },
                ],
            },
        },
    ]


def _deployment(tenant: str, name: str, metadata: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    """The pooler: an init container writes its userlist (the tenant's and its reader's password
    hashes) into memory, then PgBouncer serves the tenant's databases; both restricted."""
    labels = pooler_labels(tenant)

    def password(variable: str, secret: str) -> dict[str, Any]:
        return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}

    userlist = {"name": "userlist", "mountPath": "/etc/pgbouncer/userlist"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": dict(metadata),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": restricted_pod(PGBOUNCER_UID),
                    "initContainers": [
                        {
                            "name": "userlist",
                            "image": POSTGRES_IMAGE,
                            "command": ["sh", "/etc/pgbouncer/write-userlist.sh"],
                            "env": [
                                {"name": "TENANT", "value": tenant},
                                password("PGPASSWORD", f"{tenant}-db-credentials"),
                                {"name": "READER", "value": reader_name(tenant)},
                                password("READER_PASSWORD", reader_database_secret(tenant)),
                            ],
                            "securityContext": restricted_container(),
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"memory": "32Mi"},
                            },
                            "volumeMounts": [
                                {
                                    "name": "config",
                                    "mountPath": "/etc/pgbouncer/write-userlist.sh",
                                    "subPath": "write-userlist.sh",
                                },
                                dict(userlist),
                            ],
                        }
                    ],
                    "containers": [
                        {
                            "name": "pgbouncer",
                            "image": PGBOUNCER_IMAGE,
                            "args": ["/etc/pgbouncer/pgbouncer.ini"],
                            "ports": [{"name": "postgres", "containerPort": PORT}],
                            "readinessProbe": {"tcpSocket": {"port": PORT}},
                            "securityContext": restricted_container(),
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "32Mi"},
                                "limits": {"memory": "128Mi"},
                            },
                            "volumeMounts": [
                                {
                                    "name": "config",
                                    "mountPath": "/etc/pgbouncer/pgbouncer.ini",
                                    "subPath": "pgbouncer.ini",
                                },
                                {**userlist, "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": name}},
                        {"name": "userlist", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                    ],
                },
            },
        },
    }


def network_policy(
    name: str,
    namespace: str,
    pods: dict[str, str],
    direction: Literal["Ingress", "Egress"],
    peers: list[dict[str, Any]],
) -> dict[str, Any]:
    """A NetworkPolicy on `pods` (all of the namespace's when empty) that allows one direction
    only, to or from `peers`, on the pooler's port: both sides of the flows the poolers add."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "podSelector": {"matchLabels": dict(pods)} if pods else {},
            "policyTypes": [direction],
            direction.lower(): [
                {"from" if direction == "Ingress" else "to": peers, "ports": [{"protocol": "TCP", "port": PORT}]}
            ],
        },
    }


def postgres_from_tenant_poolers() -> dict[str, Any]:
    """The CloudNativePG instances admit the tenants' poolers (the platform's PgBouncer has its own
    rule, manifests/base/network/network-policies.yaml: postgres-instances)."""
    poolers = [{"podSelector": {"matchLabels": {NAME_LABEL: POOLER_APP}}}]
    postgres = {"cnpg.io/cluster": POSTGRES_CLUSTER}
    return network_policy("postgres-from-tenant-poolers", PLATFORM_NAMESPACE, postgres, "Ingress", poolers)


def tenant_pooler_egress(tenant: str) -> dict[str, Any]:
    """In the tenant's namespace: its pods may reach its own pooler (and no other tenant's, whose
    policy admits only that tenant's namespace)."""
    pooler = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": PLATFORM_NAMESPACE}},
        "podSelector": {"matchLabels": {NAME_LABEL: POOLER_APP, TENANT_LABEL: tenant}},
    }
    return network_policy("allow-own-pgbouncer-egress", tenant, {}, "Egress", [pooler])
