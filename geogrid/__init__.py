"""geogrid's domain, by capability: ``core`` (settings, errors, time, JSON, versions),
``db`` (engine, schema, migrations, local cluster), ``geo`` (pure geometry), ``access``,
``areas``, ``people``, ``incidents``, ``environment``, ``coverage``, ``io`` and ``cli``.
"""
