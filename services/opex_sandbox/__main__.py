"""`python -m services.opex_sandbox` (or `make sandbox`): the sandbox on SANDBOX_HOST /
SANDBOX_PORT (127.0.0.1:8082), one worker, uvloop and httptools, no access log."""

from __future__ import annotations

import logging

import uvicorn

from .app import create_app
from .config import SandboxConfig
from .runtime import freeze_heap, tune_gc
from .server import SandboxHttpProtocol


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = SandboxConfig()
    app = create_app(config)
    tune_gc()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            loop="uvloop",
            http=SandboxHttpProtocol,  # httptools, one write per answer
            access_log=False,
            log_level="info",
            timeout_graceful_shutdown=2,
        )
    )
    freeze_heap()
    print(
        f"OPEX sandbox on http://{config.host}:{config.port} "
        f"(admin key {config.admin_api_key}; docs at /sandbox/docs)",
        flush=True,
    )
    server.run()


if __name__ == "__main__":
    main()
