"""Serving: the HTTP API and the phone page over one engine.

    server.py    create_app: the FastAPI app assembled (lifespan, CORS, metrics, error answers)
    routes_*.py  the endpoints, one module per group, in docs/serving.md's order
    state.py     what the routes share: the engine behind its batcher and the model's lifecycle
    config.py    ServeConfig: serve's settings, defaults and help
    requests.py  error answers; the photo read from a request, in memory only
    batching.py  one inference thread, dynamic batches, a bounded queue
    metrics.py   Prometheus text metrics and the middleware that counts requests
    runner.py    bind, serve with uvicorn, drain on Ctrl-C / SIGTERM
    web/         the page a phone opens

Importing this package imports nothing heavy; the modules import FastAPI at the top.
"""
