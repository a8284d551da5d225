"""Turning what interLink sends into remote objects: naming, ownership, translation."""
