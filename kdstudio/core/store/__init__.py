"""The store room of the pipeline."""
