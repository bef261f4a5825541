"""The floor of the submit scenario: the bare endpoint (bench/bare.py) alone in its own uvicorn
process (``uvicorn bench.floor_app:app``), in a plain FastAPI app with no middleware.

Not the issue's baseline (that is ``bench.bare_app``, in the API's own process): it shows what
the API's middleware and application cost on top of the endpoint's own work.
"""

from fastapi import FastAPI

from bench.bare import bare_backend, router

app = FastAPI(lifespan=bare_backend)
app.include_router(router)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
