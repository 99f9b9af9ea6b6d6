"""Clusters: the one place that creates or connects them (:mod:`.create`: local,
address, Kubernetes), the offline DaskCluster checks (:mod:`.kube`), and shipping
a user's code to workers (:mod:`.shipping`). Everything else takes a ``Client``."""
