"""The `mlops` command line and the operator's tools (submit, promote, doctor, lint, isolation-check):
thin over pipelines and components, which never import it."""
