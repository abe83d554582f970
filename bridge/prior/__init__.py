"""The bundled procedural head family (ProcHead) and its trained generator."""
