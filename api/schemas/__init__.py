"""Request bodies and response models, one module per resource; ``common`` holds the
paging envelope ``Page[T]`` and the one function that builds it (``paged``)."""
