"""Writers and readers of the release formats: Parquet shards, MM-GCoT JSON, LLaVA conversations."""
