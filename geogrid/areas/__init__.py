"""Areas and grids: levels and layers (reference), the one import path, versioned
edits and retirement, and listing and point lookup.
"""
