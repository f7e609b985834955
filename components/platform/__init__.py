"""Clients of the platform's services and their settings, for every room that reaches the platform.

settings (where the services are: PlatformSettings from the mlops-platform ConfigMap and the
Secrets), services (S3, MLflow, Feast stores), model_registry (reading the MLflow registry back),
buckets, s3_filesystem, online_writer (Feast's Redis and SQLite online rows), feature_definitions
(what every Feast repository declares alike), readonly (the transformer's read-only identity),
pushgateway_client, tenant_pool, and tracking_auth, which runs inside the MLflow server.

May import: the shared modules and components.serving (online_writer writes the keys
online_reader reads, with one encoder). Never components.steps (tests/test_architecture.py).
"""
