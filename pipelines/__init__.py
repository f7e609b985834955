"""Reference pipelines: declarations that wire components into DAGs.

A pipeline knows which components run, in what order, with which retry policy, resources
and image; it knows nothing of a component's insides.
"""
