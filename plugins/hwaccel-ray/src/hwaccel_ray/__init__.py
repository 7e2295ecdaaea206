"""hwaccel-ray: ``hwaccel matrix --executor ray``, the matrix on a Ray cluster.

Each node joins the cluster with ``hwaccel-ray node``, which runs hwaccel's detection with the
plugins installed (and not disabled) on that node and starts Ray's node with the devices it
found as Ray custom resources (:mod:`hwaccel_ray.resources`). The executor
(:mod:`hwaccel_ray.executor`) runs detection again on every node as a Ray task, plans the
cells from what the nodes offer, and sends each cell as a Ray task that asks for its device's
resource, so Ray places it only on a node that has the device. On the node the cell runs
through the core's cell runner (:mod:`hwaccel_ray.node`); its result comes back to the driver,
which alone writes the database.

Importing this package imports no ray: the executor and the node code import it when they run.
"""
