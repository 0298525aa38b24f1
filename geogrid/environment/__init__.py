"""Environmental supervision: pollution sources and the patrols that visit them.
"""
