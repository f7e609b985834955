"""The steps of a pipeline, and what only they use: this room runs in the component image.

Each step is a plain function over paths, URIs and typed settings (its contract is in
pipelines/contract.py), run by `mlops step` on a laptop and in every pipeline pod. Beside the
steps: the training internals (distributed, trainjob, torchscript_export, model_formats) and what
only promote renders (serving_authorization, triton_repository).

The steps with an op, one contract each (pipelines/contract.py); this list is
generated from the code by `python -m mlops.docs_index`: steps

- validate: check the raw dataset against a Great Expectations suite before anything uses it.
- materialize: publish validated data to Feast, build the training sets, fill the online store.
- drift (ops drift, hold): is the data the champion scores still the data it was trained on, and must we retrain?
- train: fit the model on the point-in-time training set.
- evaluate: score the model on the time-ordered holdout and decide whether it may ship.
- register: put the model in the MLflow registry exactly once per artifact.
- promote: render the canary release of a registered model.
- notify: tell the model owner that a candidate failed its gate, or that a run failed.

May import: the shared modules (components.errors, config, handoffs, artifacts, tabular, lineage,
environment), components.platform and components.serving (promote writes what serving reads,
skew replays the scoring join). Nothing outside this room imports it from components/
(tests/test_architecture.py).
"""
