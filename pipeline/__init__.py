"""The domain steps: GCoT building (sources -> chains -> verify -> release), LongV-EVAL, detection, evaluation."""
