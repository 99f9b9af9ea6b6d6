"""Clusters: the one place that creates or connects them (:mod:`.create`: local,
address, Kubernetes), the DaskCluster daskbench asks the operator for (:mod:`.kube`)
and its offline checks against the operator's CRDs (:mod:`.kube_crd`), whether a
dashboard link answers (:mod:`.dashboard`), and shipping a user's code to workers
(:mod:`.shipping`). Everything else takes a ``Client``."""
