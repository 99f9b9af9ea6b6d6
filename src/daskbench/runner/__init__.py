"""Running trials on Dask: :mod:`.driver` turns trials into futures,
:mod:`.execute` runs a chunk of trials on a worker, :mod:`.isolate` runs one trial
in a child process, and both call the trial through :mod:`.invoke`."""
