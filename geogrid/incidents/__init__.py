"""Incidents: the state machine and time limits, categories, intake and routing,
reading and listing, the case workflow, historical bulk import and the working calendar.
"""
