"""Planner editing of grid boundaries: reshape with shared vertices, split, merge, and
the impact of an edit before it is saved."""
