"""Running trials on Dask: :mod:`.driver` turns trials into futures and pumps
:mod:`.recovery` (crash recovery, a pure state machine), :mod:`.chunking` sizes
the chunks, :mod:`.spec` is what a chunk carries, :mod:`.execute` runs a chunk of
trials on a worker, :mod:`.isolate` runs one trial in a child process, and both
call the trial through :mod:`.invoke`."""
