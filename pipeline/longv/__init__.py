"""LongV-EVAL: long videos -> adaptive keyframes -> tracks -> three edit prompts -> review -> release."""
