"""tint: tiny classifiers from tiny data via textual + null-text inversion (TINT).

The library has no orchestration code; Prefect tasks and flows wrap it elsewhere.
Submodules are imported on demand so that light users (the artifact store, configs)
do not pay for loading diffusers.
"""

__version__ = "0.1.0"
