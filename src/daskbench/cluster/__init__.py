"""Clusters: the one place that creates or connects them (:mod:`.create`: local,
address, Kubernetes), the DaskCluster daskbench asks the operator for (:mod:`.kube`)
and its offline checks against the operator's CRDs (:mod:`.kube_crd`), whether a
dashboard link answers (:mod:`.dashboard`), and shipping a user's code to workers
(:mod:`.shipping`), and a local cluster kept running between commands (:mod:`.keep`,
with its pure record in :mod:`.keep_state`, its files' names in :mod:`.keep_paths`, its
process in :mod:`.keep_serve`, a run's Client on it in :mod:`.keep_connect` and its
driver zygote in :mod:`.keep_driver` and :mod:`.keep_client`). Everything else takes a
``Client``."""
