"""Settings of the gateway: every value comes from the environment (see README's table).

The embedded default needs nothing: SQLite in ``GATEWAY_DATA_DIR`` and the in-memory
channel layer. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dj_database_url

from gateway.env import (
    envbool,
    envfloat,
    envint,
    envlist,
    envpath,
    lazysecret,
    envstr,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"

GATEWAY_DATA_DIR = envpath("GATEWAY_DATA_DIR", BASE_DIR / "data")
GATEWAY_DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)  # `serve` tightens an old one
GATEWAY_WORKSPACE = envpath("GATEWAY_WORKSPACE", GATEWAY_DATA_DIR / "workspaces")
# The only way to let tools (`bash`) run without the bubblewrap sandbox: the operator says so
# here, `serve` warns at start-up and /health shows "tools": "unsandboxed" (README: Sandbox).
GATEWAY_UNSANDBOXED_TOOLS = envbool("GATEWAY_UNSANDBOXED_TOOLS", False)
# Warm sandboxes (docs/sandbox.md): `agents.warm` reads these from the environment itself
# (it does not import Django); read here too so a bad value stops the server at start-up.
GATEWAY_SANDBOX_WARM = envbool("GATEWAY_SANDBOX_WARM", True)
GATEWAY_SANDBOX_WARM_IDLE = envfloat("GATEWAY_SANDBOX_WARM_IDLE", 90.0, minimum=1.0)

SECRET_KEY = lazysecret("SECRET_KEY", GATEWAY_DATA_DIR)
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "gateway",
    "profiles",
    "permissions",
    "chats",
    "dashboard",
]

# Django's middlewares with their hooks run in the event loop (gateway/inline_middleware.py):
# under ASGI each hook of the originals costs a thread hop.
MIDDLEWARE = [
    "gateway.logs.RequestLogMiddleware",
    "gateway.inline_middleware.SecurityMiddleware",
    "gateway.inline_middleware.SessionMiddleware",
    "gateway.inline_middleware.CommonMiddleware",
    "gateway.inline_middleware.CsrfViewMiddleware",
    "gateway.inline_middleware.AuthenticationMiddleware",
    "gateway.inline_middleware.MessageMiddleware",
    "gateway.inline_middleware.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gateway_project.urls"
ASGI_APPLICATION = "gateway_project.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = envstr("DATABASE_URL")
# Threads that run database work of sockets and turns (gateway/infra.py), each keeping
# one PostgreSQL connection from the process's pool; the pool also has room for the REST
# threads and two more (GATEWAY_DB_CONNECTIONS). docs/deploy.md has the sums against
# PostgreSQL's max_connections.
GATEWAY_DB_POOL_SIZE = envint("GATEWAY_DB_POOL_SIZE", 8, minimum=1)
GATEWAY_DB_POOL_TIMEOUT = envfloat("GATEWAY_DB_POOL_TIMEOUT", 30.0, minimum=0.1)
GATEWAY_DB_SERVER_BINDING = envbool("GATEWAY_DB_SERVER_BINDING", True)
# Threads that run REST views under serve (gateway.infra.view_runner), each keeping its
# database connection (SQLite: the file; PostgreSQL: one from the same pool).
GATEWAY_REST_THREADS = envint("GATEWAY_REST_THREADS", 4, minimum=1)
# The most PostgreSQL connections a process opens: one per database thread and REST
# thread, and two for the rest (the job scheduler's thread, one-off calls).
GATEWAY_DB_CONNECTIONS = GATEWAY_DB_POOL_SIZE + GATEWAY_REST_THREADS + 2
# How long a process may answer a token check from its cache (gateway.auth) when nothing
# said the token or its user changed: the bound for a change made behind Django's
# signals (a bulk UPDATE in a shell, SQL). Changes through the API, the admin, the
# dashboard or a command reach every process at once. 0 checks the database every time.
GATEWAY_AUTH_CACHE_SECONDS = envfloat("GATEWAY_AUTH_CACHE_SECONDS", 10.0, minimum=0.0)
if DATABASE_URL:
    # A connection PostgreSQL dropped (restart, pg_terminate_backend, idle timeout) is
    # replaced when it is taken from the pool, without CONN_HEALTH_CHECKS' round trip
    # before every call (gateway/postgresql/base.py); one that dies during a call makes
    # gateway.infra.db retry the call once.
    _database = dj_database_url.parse(DATABASE_URL, conn_max_age=0,
                                      conn_health_checks=False)
    if _database["ENGINE"] == "django.db.backends.postgresql":
        _database["ENGINE"] = "gateway.postgresql"
    # Parameters bound by the server, not quoted into the SQL by psycopg in Python (10%
    # less CPU for a turn's statements); a statement run often on a connection is then
    # prepared once. Off behind PgBouncer in transaction mode (see docs/deploy.md).
    _database.setdefault("OPTIONS", {})["server_side_binding"] = GATEWAY_DB_SERVER_BINDING
    _database["OPTIONS"]["pool"] = {
        # A few kept open; more opened on demand up to the size, then callers wait
        # (up to the timeout) instead of failing.
        "min_size": 2, "max_size": GATEWAY_DB_CONNECTIONS,
        "timeout": GATEWAY_DB_POOL_TIMEOUT, "max_idle": 300,
    }
    DATABASES = {"default": _database}
    GATEWAY_DB_THREADS = GATEWAY_DB_POOL_SIZE
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": GATEWAY_DATA_DIR / "gateway.sqlite3",
            "OPTIONS": {
                # WAL keeps readers and the writer apart and survives a crash; IMMEDIATE
                # transactions take the write lock up front instead of failing midway.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # Keep the connection: Channels closes "old" connections around every
            # database_sync_to_async call, and reopening SQLite (with its PRAGMAs) each
            # time was a large part of a turn's start-up cost.
            "CONN_MAX_AGE": None,
        }
    }
    # SQLite has one writer: one thread, as Channels' database_sync_to_async does.
    GATEWAY_DB_THREADS = 1
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("REDIS_URL")
# One blocking pool per process, shared by the event hub (what it sends besides events:
# cancels, verdicts, revocations) and the channel layer (gateway/layers.py; the chat
# sockets use none): at its size a caller waits up to the timeout, it never fails at a
# count. docs/deploy.md has the sums against Redis's maxclients.
GATEWAY_REDIS_POOL_SIZE = envint("GATEWAY_REDIS_POOL_SIZE", 50, minimum=4)
GATEWAY_REDIS_POOL = {
    "max_connections": GATEWAY_REDIS_POOL_SIZE,
    "timeout": envfloat("GATEWAY_REDIS_POOL_TIMEOUT", 20.0, minimum=0.1),
    # redis-py 8 reads with a 5 s socket timeout by default, exactly the time
    # channels-redis blocks in BZPOPMIN waiting for a message: an idle socket then dies
    # with "Timeout reading" (close 1011). Read longer than it blocks.
    "socket_timeout": 30, "socket_connect_timeout": 10,
}
# How long the event hub keeps retrying a Redis write (a restart, a failover) before the
# turn that wrote it ends with agent.error.
GATEWAY_REDIS_RETRY_SECONDS = envfloat("GATEWAY_REDIS_RETRY_SECONDS", 15.0, minimum=0.0)
# Capacity is high on purpose: both layers silently drop a group message when a channel
# is full, and a burst of deltas to a slow socket must not lose text.
_CHANNEL_CAPACITY = envint("GATEWAY_CHANNEL_CAPACITY", 20000, minimum=100)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway.layers.GatewayRedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL}],
                       "capacity": _CHANNEL_CAPACITY, "expiry": 60},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "gateway.layers.GatewayInMemoryChannelLayer",
            "CONFIG": {"capacity": _CHANNEL_CAPACITY, "expiry": 60},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = GATEWAY_DATA_DIR / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["gateway.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Bounded nesting, no NUL or lone surrogate in; old bad text replaced out.
    "DEFAULT_RENDERER_CLASSES": ["gateway.jsonio.JsonRenderer"],
    "DEFAULT_PARSER_CLASSES": ["gateway.jsonio.JsonParser"],
    "EXCEPTION_HANDLER": "gateway.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_TTL": None,  # tokens live until revoked unless created with an expiry
    "TOKEN_PREFIX": "gw_",
}
KNOX_TOKEN_MODEL = "gateway.ApiToken"
# knox's own migrations create its default token table even when the model is swapped
# for ours; that orphan table would only hold a foreign key to users.
MIGRATION_MODULES = {"knox": None}

SPECTACULAR_SETTINGS = {
    "TITLE": "Agent gateway API",
    "DESCRIPTION": "REST API of the agent gateway. The WebSocket protocol is described in "
                   "docs/protocol.md of the repository; its machine-readable contract is "
                   "the AsyncAPI 3.0 document at [/api/asyncapi.json](/api/asyncapi.json).",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the pinned drf-spectacular-sidecar package, not a CDN: /api/docs/
    # works on a server without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Agent behaviour.
GATEWAY_APPROVAL_TIMEOUT = envfloat("GATEWAY_APPROVAL_TIMEOUT", 300.0, minimum=0.1)
GATEWAY_MAX_TOOL_ROUNDS = envint("GATEWAY_MAX_TOOL_ROUNDS", 25, minimum=1)
GATEWAY_BASH_TIMEOUT = envfloat("GATEWAY_BASH_TIMEOUT", 60.0, minimum=0.1)
GATEWAY_TOOL_OUTPUT_LIMIT = envint("GATEWAY_TOOL_OUTPUT_LIMIT", 64_000, minimum=1000)
GATEWAY_UPSTREAM_TIMEOUT = envfloat("GATEWAY_UPSTREAM_TIMEOUT", 120.0, minimum=0.1)
GATEWAY_UPSTREAM_RETRIES = envint("GATEWAY_UPSTREAM_RETRIES", 2, minimum=0)
GATEWAY_MAX_FRAME_BYTES = envint("GATEWAY_MAX_FRAME_BYTES", 1024 * 1024, minimum=1024)
GATEWAY_TURN_LEASE_SECONDS = envfloat("GATEWAY_TURN_LEASE_SECONDS", 30.0, minimum=1.0)
GATEWAY_REPLAY_EVENTS = envint("GATEWAY_REPLAY_EVENTS", 5000, minimum=100)
GATEWAY_COMPACTION_THRESHOLD = envfloat("GATEWAY_COMPACTION_THRESHOLD", 0.75, minimum=0.05)
GATEWAY_COMPACTION_KEEP_EXCHANGES = envint("GATEWAY_COMPACTION_KEEP_EXCHANGES", 4, minimum=1)
# The longest streamed text waits to be joined with more before it goes out (the first
# text of a model call never waits): a stream stays a stream while the server is busy.
GATEWAY_STREAM_MAX_WAIT_MS = envfloat("GATEWAY_STREAM_MAX_WAIT_MS", 5.0, minimum=0.0)

DATA_UPLOAD_MAX_MEMORY_SIZE = envint("GATEWAY_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "gateway.logs.JsonFormatter"},
        "plain": {"()": "gateway.logs.PlainFormatter"},
    },
    # LOG_FORMAT=plain for a developer's terminal; JSON lines by default.
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "formatter": envstr("LOG_FORMAT", "json")}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "httpx2": {"level": "WARNING"},  # the openai client logs every request at INFO
        "httpx": {"level": "WARNING"},
    },
}

# MCP servers and skills (README: "MCP servers and skills").
INSTALLED_APPS += ["mcp_servers"]
GATEWAY_MCP_CALL_TIMEOUT = envfloat("GATEWAY_MCP_CALL_TIMEOUT", 60.0, minimum=0.1)
GATEWAY_MCP_CONNECT_TIMEOUT = envfloat("GATEWAY_MCP_CONNECT_TIMEOUT", 30.0, minimum=0.1)
GATEWAY_MCP_PROBE_INTERVAL = envfloat("GATEWAY_MCP_PROBE_INTERVAL", 15.0, minimum=0.1)
GATEWAY_MCP_BACKOFF_MAX = envfloat("GATEWAY_MCP_BACKOFF_MAX", 120.0, minimum=1.0)
GATEWAY_SKILLS_DIR = envpath("GATEWAY_SKILLS_DIR", GATEWAY_DATA_DIR / "skills")

# GATEWAY_MAX_BODY_BYTES for every request, chunked ones too (gateway/limits.py);
# after the request log, so refused requests are logged.
MIDDLEWARE.insert(MIDDLEWARE.index("gateway.logs.RequestLogMiddleware") + 1,
                  "gateway.limits.BodyLimitMiddleware")

# Failed-authentication limit per client address (gateway/ratelimit.py); 0 turns
# it off. The counts live in Django's cache: per process by default (LocMemCache), shared
# by every process through Redis when REDIS_URL is set.
GATEWAY_AUTH_FAIL_LIMIT = envint("GATEWAY_AUTH_FAIL_LIMIT", 20, minimum=0)
# Client addresses from X-Forwarded-For only behind a proxy that sets it: otherwise any
# client could pick its own address (and escape the limit above).
GATEWAY_TRUST_PROXY_HEADERS = envbool("GATEWAY_TRUST_PROXY_HEADERS", False)
GATEWAY_AUTH_FAIL_WINDOW = envint("GATEWAY_AUTH_FAIL_WINDOW", 60, minimum=1)
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL, "KEY_PREFIX": "gateway-cache"}}

# Workspace files (files/, docs/files.md): the largest file an upload may store, and the
# default quota of a workspace in bytes and in files (an admin may set a user's own with
# PUT /api/files/quota). Uploads larger than GATEWAY_MAX_BODY_BYTES are sent in parts of
# at most that size.
INSTALLED_APPS += ["files"]
GATEWAY_FILES_MAX_FILE_BYTES = envint("GATEWAY_FILES_MAX_FILE_BYTES", 512 * 1024 * 1024,
                                      minimum=1)
GATEWAY_FILES_QUOTA_BYTES = envint("GATEWAY_FILES_QUOTA_BYTES", 2 * 1024 ** 3, minimum=0)
GATEWAY_FILES_QUOTA_FILES = envint("GATEWAY_FILES_QUOTA_FILES", 20_000, minimum=0)
# An attached image larger than this reaches a vision model as its path only.
GATEWAY_ATTACH_IMAGE_MAX_BYTES = envint("GATEWAY_ATTACH_IMAGE_MAX_BYTES", 5 * 1024 * 1024,
                                        minimum=0)
# Scheduled jobs, outgoing notifications, the Clotho importer (docs/jobs.md).
INSTALLED_APPS += ["notifications", "jobs", "clotho_import"]
GATEWAY_JOBS_POLL_SECONDS = envfloat("GATEWAY_JOBS_POLL_SECONDS", 5.0, minimum=0.05)
GATEWAY_JOBS_RUN_LEASE_SECONDS = envfloat("GATEWAY_JOBS_RUN_LEASE_SECONDS", 60.0, minimum=1.0)
GATEWAY_JOBS_RUN_TIMEOUT = envfloat("GATEWAY_JOBS_RUN_TIMEOUT", 3600.0, minimum=1.0)
# Off: a job's runs deny every call the policy would ask about, whatever the job lists.
GATEWAY_JOBS_ALLOW_UNASKED_TOOLS = envbool("GATEWAY_JOBS_ALLOW_UNASKED_TOOLS", True)
GATEWAY_NOTIFY_POLL_SECONDS = envfloat("GATEWAY_NOTIFY_POLL_SECONDS", 2.0, minimum=0.05)
GATEWAY_NOTIFY_MAX_ATTEMPTS = envint("GATEWAY_NOTIFY_MAX_ATTEMPTS", 5, minimum=1)
GATEWAY_NOTIFY_BACKOFF_SECONDS = envfloat("GATEWAY_NOTIFY_BACKOFF_SECONDS", 30.0, minimum=0.01)
GATEWAY_NOTIFY_TIMEOUT = envfloat("GATEWAY_NOTIFY_TIMEOUT", 10.0, minimum=0.1)
# On: destinations may point at any host, private networks included (unsafe by name).
GATEWAY_NOTIFY_UNSAFE_ANY_HOST = envbool("GATEWAY_NOTIFY_UNSAFE_ANY_HOST", False)
# Where people reach the dashboard, for links back to a chat in notifications.
GATEWAY_PUBLIC_URL = envstr("GATEWAY_PUBLIC_URL", "")
# E-mail destinations go through Django's mail settings.
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "gateway@localhost")

# Running it for a team: users, model access, usage and budgets, audit log.
INSTALLED_APPS += ["users", "access", "usage", "audit"]
MIDDLEWARE.insert(MIDDLEWARE.index("gateway.inline_middleware.AuthenticationMiddleware")
                  + 1, "audit.middleware.AuditContextMiddleware")
# Audit records older than this are removed when a server starts; 0 keeps them all.
GATEWAY_AUDIT_RETENTION_DAYS = envint("GATEWAY_AUDIT_RETENTION_DAYS", 365, minimum=0)
# A budgeted turn's charge stops counting after this long if its process died.
GATEWAY_BUDGET_CHARGE_SECONDS = envint("GATEWAY_BUDGET_CHARGE_SECONDS", 3600, minimum=60)
# How long an invite link (a one-time sign-in link) works.
PASSWORD_RESET_TIMEOUT = envint("GATEWAY_INVITE_SECONDS", 3 * 24 * 3600, minimum=60)

# JSON (not Django's HTML page) for a CSRF failure on the API and the dashboard's JSON
# routes; the login pages keep the HTML page (gateway/errors.py).
CSRF_FAILURE_VIEW = "gateway.errors.csrf_failure"

# Password sign-in (/login/ and /admin/login/) is limited like tokens are: after
# GATEWAY_AUTH_FAIL_LIMIT failures in GATEWAY_AUTH_FAIL_WINDOW seconds, from one address
# or for one user name, sign-in is refused (429) until the window has passed. django-axes
# counts, in the database, so every process sees the same counts.
INSTALLED_APPS += ["axes"]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = GATEWAY_AUTH_FAIL_LIMIT > 0
AXES_FAILURE_LIMIT = max(GATEWAY_AUTH_FAIL_LIMIT, 1)
AXES_COOLOFF_TIME = dt.timedelta(seconds=GATEWAY_AUTH_FAIL_WINDOW)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # each on its own
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_CLIENT_IP_CALLABLE = "gateway.ratelimit.axes_client_ip"
AXES_LOCKOUT_CALLABLE = "gateway.ratelimit.login_locked_out"
AXES_RESET_ON_SUCCESS = True
LOGGING["loggers"]["axes"] = {"level": "WARNING"}  # lockouts, not every attempt
