"""pytest-siuo: the SIUO cross-modality safety benchmark as pytest regression tests."""

from __future__ import annotations

__version__ = "0.1.0"
