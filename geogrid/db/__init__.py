"""Storage: the engine and sessions, the SQLAlchemy schema of every table (the Alembic
metadata), the migrations and the project's local PostgreSQL cluster.
"""
