import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from tasks_api import change_listener, exception_handlers
from tasks_api.auth.dependencies import BEARER_SCHEME, USER_ID_PARAMETER
from tasks_api.auth.tokens import TokenVerifier
from tasks_api.change_hub import ChangeHub
from tasks_api.change_listener import ChangeListener
from tasks_api.config import Settings, get_settings
from tasks_api.database import Database
from tasks_api.logging_config import configure_logging, user_reference_key
from tasks_api.metrics import Metrics
from tasks_api.middleware.request_context import RequestContextMiddleware
from tasks_api.routers import _openapi_rules, docs, health, metrics, organize, sync, tasks
from tasks_api.routers._openapi import BODY_MODELS
from tasks_api.services import event_service

CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
    "Last-Event-ID",
]
# Retry-After: a browser page can honour a 503's or 429's advice only if it may read it.
CORS_EXPOSED_HEADERS = ["ETag", "Location", "X-Request-ID", "Retry-After", "Idempotent-Replayed"]


def _operation_id(route: APIRoute) -> str:
    return route.name


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, model in BODY_MODELS.items():
            body_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body_schema.pop("$defs", {}))
            components[name] = body_schema
        _drop_fastapi_422(schema)
        _restore_null_details(schema)
        _add_bearer_security(schema)
        _openapi_rules.apply(schema)
        app.openapi_schema = schema
    return app.openapi_schema


def _drop_fastapi_422(schema: dict[str, Any]) -> None:
    """Invalid input is a 400 here; FastAPI's generated 422 would document a lie."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422", {})
            ref = str(response.get("content", {}).get("application/json", {}).get("schema"))
            if "HTTPValidationError" in ref:
                del operation["responses"]["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)


def _add_bearer_security(schema: dict[str, Any]) -> None:
    """Every /api operation needs the bearer token (Swagger UI's Authorize sends it) and
    names its user in the path: both are read by the one auth dependency."""
    schema["components"].setdefault("securitySchemes", {}).update(BEARER_SCHEME)
    for path, operations in schema["paths"].items():
        if path.startswith("/api/"):
            for operation in operations.values():
                operation["security"] = [{name: []} for name in BEARER_SCHEME]
                operation.setdefault("parameters", []).insert(0, copy.deepcopy(USER_ID_PARAMETER))


def _restore_null_details(schema: dict[str, Any]) -> None:
    """FastAPI drops every null from the document; an error example says `details: null`."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {}).get("application/json", {})
                for example in content.get("examples", {}).values():
                    error = example.get("value", {}).get("error")
                    if isinstance(error, dict):
                        error.setdefault("details", None)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.database = Database(settings)
        event_service.track_listeners(app.state.change_hub, app.state.database)
        listener = ChangeListener(change_listener.connector(settings), app.state.change_hub)
        listener.start()
        app.state.change_listener = listener
        try:
            yield
        finally:
            # Streams end first (under uvicorn sse-starlette has ended them at SIGTERM already).
            app.state.change_hub.close()
            await listener.stop()
            await app.state.token_verifier.aclose()
            await app.state.database.dispose()

    app = FastAPI(
        title="Tasks API",
        version="1.0.0",
        description="Multi-user task management. Every `/api` request needs a bearer JWT "
        "whose user is the `{user_id}` in the URL.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=_operation_id,
        # An API client gets a 404 for a stray slash, not a redirect that drops its method.
        redirect_slashes=False,
        # FastAPI's native OpenTelemetry: off, as nothing here configures a provider (the
        # service has its own /metrics and access log). Left on, it looked up the global
        # providers on every request to find them unconfigured (~5% of a request's CPU).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings)
    app.state.change_hub = ChangeHub(
        settings.events_max_streams_per_user, concurrent_reads=max(1, settings.db_pool_size // 2)
    )
    exception_handlers.register(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(tasks.router)
    app.include_router(organize.router)
    app.include_router(sync.router)
    docs.mount(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )
    app.state.metrics = Metrics(app.state, settings.db_max_overflow)
    # Outermost, so every response (CORS preflights and 500s too) carries the request id,
    # is logged and counted.
    app.add_middleware(
        RequestContextMiddleware,
        metrics=app.state.metrics,
        user_key=user_reference_key(settings),
        cors_origins=settings.cors_origins,
        cors_exposed_headers=CORS_EXPOSED_HEADERS,
    )
    return app
