"""Real platform services on loopback, for development and tests.

PostgreSQL, PgBouncer (transaction pooling), Redis, an S3 server (SeaweedFS) and the MLflow
tracking server, each started from its own binary with its data under one project-local
folder, its port chosen by the caller, and a pid file so `mlops dev down` stops exactly what
`mlops dev up` started. Nothing here is used by components or pipelines: they only read the
environment that `Stack.environment()` describes (the platform profile).
"""
