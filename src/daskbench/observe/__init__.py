"""Observation: reads events and results, never drives the run. Live metrics from
trials (:mod:`.live`), the progress line (:mod:`.progress`), the scheduler plugin
with Prometheus metrics and the status page (:mod:`.plugin`), and the report
written after a run (:mod:`.report`)."""
