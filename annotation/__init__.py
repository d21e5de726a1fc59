"""The annotator web UI: Label Studio, started by the project, filled with our chains, read back."""
