"""The HTTP side of the OpenAI API. Routes decode the transport and call the service; nothing
here decides what an image request means.

    routes/         thin routes per endpoint family: images, models, moderations, playground
    protocol.py     wire models: requests, responses (the OpenAPI docs come from these)
    transport/      multipart and JSON bodies, image URLs, SSE framing and disconnects
    auth.py, limits.py, middleware.py   the edges: API keys, per-key limits, request ids
    error_handlers.py                   every error in the OpenAI envelope
"""
