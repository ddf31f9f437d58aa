"""MB-MPO (Clavera et al., CoRL 2018) in PyTorch, and the model-based core shared with the baselines."""

__version__ = "0.1.0"
