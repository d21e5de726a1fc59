"""Detector-assisted labeling: Ultralytics YOLO pre-annotates images and cross-checks chains."""
