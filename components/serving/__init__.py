"""The code that runs where a model is served, not where it is trained.

- transformer, scoring, online_reader, request_guard, triton_config: the scoring transformer, run
  from the component image's own /opt/transformer environment (.venv-transformer on a laptop):
  KServe, Feast, tritonclient; no XGBoost, torch, MLflow, scikit-learn, Great Expectations,
  Evidently, SciPy, matplotlib or Treelite.
- triton_stub_model: copied into a python-backend model repository as model.py and run inside
  Triton's python stub (.venv-serving); it imports nothing of components at all.

May import: the shared modules and components.platform. Never components.steps nor the training
stack, not even lazily: tests/test_architecture.py follows every import, transitively.
"""
