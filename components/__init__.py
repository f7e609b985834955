"""The six steps of a training pipeline, as plain Python functions.

Components know nothing of Argo, KFP or the CLI: each takes paths or URIs and plain
settings, writes its outputs atomically, and returns a JSON-able summary. Importing this
package applies the air-gapped defaults (no telemetry) before any library loads.

Every module here owns one step or one convention the steps share (settings, errors, artifacts,
hand-offs, services) and must not import pipelines, mlops, devstack, kfp or hera
(tests/test_architecture.py holds every module to it).
"""

from components.environment import apply_airgap_defaults, defer_feast_torch_import, filter_mlflow_plugins

apply_airgap_defaults()
filter_mlflow_plugins()
defer_feast_torch_import()
