"""Pictures of runs and models: curves, confusion matrices, overlays, reports."""
