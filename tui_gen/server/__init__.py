"""`tui-gen serve`: an OpenAI-compatible HTTP server over the engine (needs the `serve` extra).

    schemas.py     the request shapes (pydantic) and the error object
    convert.py     request fields -> SamplingParams and prompt ids; events -> response pieces
    app.py         the FastAPI routes, streaming, the bridge to the engine's Scheduler
    middleware.py  the --api-key check and one log line per request
    run.py         load the model, bind the socket, run uvicorn (the CLI and the tests)

May import the engine, options and errors; never the app or the CLI.
"""
