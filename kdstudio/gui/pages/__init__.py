"""The project's pages in pipeline order: Data · Teacher · Student · Method · Train · Evaluate · Export."""
