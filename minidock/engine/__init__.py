"""The engine: container records, lifecycle, the per-container monitor, logs."""
