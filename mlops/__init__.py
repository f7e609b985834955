"""The `mlops` command line: thin over pipelines and components."""
