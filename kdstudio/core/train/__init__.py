"""The train room of the pipeline."""
