"""Clusters: the one place that creates or connects them (:mod:`.create`: local,
address, Kubernetes), the DaskCluster daskbench asks the operator for (:mod:`.kube`)
and its offline checks against the operator's CRDs (:mod:`.kube_crd`), whether a
dashboard link answers (:mod:`.dashboard`), shipping a user's code to workers
(:mod:`.shipping`), and the private parts of Dask daskbench relies on, each behind
one function (:mod:`.dask_compat`). Everything else takes a ``Client``."""
