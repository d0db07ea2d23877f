"""Model definitions (plain torch modules, one file per model)."""
