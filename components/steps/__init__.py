"""The steps of a pipeline, and what only they use: this room runs in the component image.

Each step is a plain function over paths, URIs and typed settings (its contract is in
pipelines/contract.py), run by `mlops step` on a laptop and in every pipeline pod. Beside the
steps: the training internals (distributed, trainjob, torchscript_export, model_formats) and what
only promote renders (serving_authorization, triton_repository).

May import: the shared modules (components.errors, config, handoffs, artifacts, tabular, lineage,
environment), components.platform and components.serving (promote writes what serving reads,
skew replays the scoring join). Nothing outside this room imports it from components/
(tests/test_architecture.py).
"""
