"""Checks consume events and report findings. One module per check."""

from .overlap import OverlapCheck

ALL_CHECKS = [
    OverlapCheck,
]
