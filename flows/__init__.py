"""Prefect flows: ``benchmark`` (the main job), ``distill`` (support folder → student), ``specialize`` (one unit).

Flows only wire tasks (``tasks/``); the work is in ``tint_core``.
"""
