"""Readers that turn a source (Visual Genome, COCO, synthetic scenes) into `SceneGraph` records."""
