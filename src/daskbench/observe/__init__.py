"""Observation: reads events and results, never drives the run. Live metrics from
trials and their event topics (:mod:`.live`), the progress line (:mod:`.progress`),
the scheduler plugin that keeps each sweep's summary (:mod:`.plugin`), served as
Prometheus metrics (:mod:`.prometheus`) and as a status page (:mod:`.status_page`),
and the report written after a run (:mod:`.report`)."""
