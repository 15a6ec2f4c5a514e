"""pytest hooks of pytest-siuo (placeholder while the boxes are built)."""
