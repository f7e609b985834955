"""The code the pipelines run, in rooms by where it runs.

- components/steps/: the pipeline's steps and their internals (the component image);
- components/serving/: the scoring transformer (its own environment) and Triton's stub model;
- components/platform/: clients of the platform's services and their settings;
- here, shared by every room: errors, config (the pipeline's typed step settings), handoffs,
  artifacts, tabular, lineage, environment.

Components know nothing of Argo, KFP or the CLI: each step takes paths or URIs and plain
settings, writes its outputs atomically, and returns a JSON-able summary. Importing this
package applies the air-gapped defaults (no telemetry) before any library loads.

Nothing here imports pipelines, mlops, devstack, kfp or hera, and each room imports only what its
docstring allows (tests/test_architecture.py holds every module to it).
"""

from components.environment import apply_airgap_defaults, defer_feast_torch_import, filter_mlflow_plugins

apply_airgap_defaults()
filter_mlflow_plugins()
defer_feast_torch_import()
