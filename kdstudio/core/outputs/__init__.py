"""The outputs room of the pipeline."""
