"""Operating homenode: the live status model, its Unix-socket API, `homenode top`, the
Prometheus exporter, `homenode explain`, the HTML run report and the daemon's logging.

The pieces a daemon (or a live simulation) wires together::

    status = StatusRecorder(topology, source="daemon", policy="esxi", settings=cfg)
    server = serve_status(status, socket_path)          # ops.api
    exporter = start_exporter(status, "127.0.0.1:9851")  # ops.exporter, optional
    loop.run(TimedHost(host, status), policy, clock, recorder=loop.Tee(rec, status), ...)
    exporter.close(); server.close()
"""
