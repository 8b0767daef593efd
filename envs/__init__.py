"""Gymnasium environments for physode's systems and learned models, installed as ``physode.envs``.

The environments themselves arrive with the Gymnasium issue; this package exists now so that the
``envs/`` folder is installed under ``physode.envs`` (a top-level ``envs`` would clash with an
unrelated PyPI package of that name).
"""

__all__: list[str] = []
