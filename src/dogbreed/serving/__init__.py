"""Serving core used by scripts/inference.py: pure torch + Pillow, no AWS imports."""
