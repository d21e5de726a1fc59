"""Small hand-made scene graphs whose answers can be worked out by hand."""

from core.schema import Relation, SceneGraph, SceneObject


def tabletop() -> SceneGraph:
    """Two identical large red metal cubes (twins), a blue ball on the left cube, a green ball."""
    objs = [
        SceneObject("A", "cube", (0.10, 0.50, 0.20, 0.20), ("large", "red", "metal")),
        SceneObject("B", "ball", (0.15, 0.40, 0.08, 0.10), ("small", "blue", "rubber")),
        SceneObject("C", "ball", (0.45, 0.52, 0.08, 0.10), ("small", "green", "glass")),
        SceneObject("D", "cube", (0.60, 0.52, 0.20, 0.20), ("large", "red", "metal")),
        SceneObject("E", "cone", (0.85, 0.10, 0.10, 0.12), ("small", "yellow", "wood")),
    ]
    return SceneGraph("42", "VG_100K/42.jpg", 640, 480, objs, [Relation("B", "on", "A")], source="test")
