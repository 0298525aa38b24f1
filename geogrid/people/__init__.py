"""Persons and their assignments (posts) to areas, with roles and date ranges.
"""
