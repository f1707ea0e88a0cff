"""The lab matrix: models x profiles x precisions (x datasets x paddings), every cell an
ordinary run in the run store grouped under one matrix id.

- :mod:`.plan`        the spec and its cells, each checked by the run's own preflight
- :mod:`.cells`       where each cell stands; which cells a (re)started driver runs
- :mod:`.local`       the cells on this host, one after another or side by side
- :mod:`.hosts`       what a host offers a Ray cluster (``kiln cluster head|join``)
- :mod:`.cluster`     the cells on a Ray cluster, events streamed into the driver's store
- :mod:`.remote_cell` one cell on its Ray host (the actor)
- :mod:`.table`       the table ``kiln matrix show`` and the app print
"""
