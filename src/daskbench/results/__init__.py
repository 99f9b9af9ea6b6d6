"""Results: the ``trials`` row (:mod:`.row`), the Parquet store, the one place
that touches Parquet (:mod:`.store`, :mod:`.dataset`, :mod:`.files`), the one
reader and writer of ``manifest.json`` (:mod:`.manifest`), and the code version
recorded with each run and row (:mod:`.codeversion`)."""
