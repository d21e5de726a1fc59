"""Scene graph -> relation graph -> relation paths -> templated GCoT candidates."""
