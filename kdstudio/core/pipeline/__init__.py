"""The pipeline room of the pipeline."""
