"""Shared foundations: settings, the Problem/GeogridError model, time helpers, JSON
encoding and the optimistic-concurrency (412) check. Imports nothing else of geogrid.
"""
