"""Scale tests: replication, several hosts. A package, so that its conftest.py is
``scale.conftest`` and does not shadow ``tests/conftest.py`` for ``from conftest import ...``."""
