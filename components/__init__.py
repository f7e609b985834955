"""The six steps of a training pipeline, as plain Python functions.

Components know nothing of Argo, KFP or the CLI: each takes paths or URIs and plain
settings, writes its outputs atomically, and returns a JSON-able summary. Importing this
package applies the air-gapped defaults (no telemetry) before any library loads.
"""

from components.environment import apply_airgap_defaults

apply_airgap_defaults()
