"""MM-GCoT consistency evaluation: the official computation, to the bit, and a strict mode of ours."""
