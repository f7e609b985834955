"""Reference pipelines: declarations that wire components into DAGs.

A pipeline knows which components run, in what order, with which retry policy, resources
and image; it knows nothing of a component's insides. Modules here own the declarations
(spec, declaration, contract, standard, the reference pipelines) and their renderings (argo,
kfp, local); they may import components, and must not import mlops or devstack.
"""
