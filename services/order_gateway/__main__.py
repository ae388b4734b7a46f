"""``python -m services.order_gateway``: the order gateway with /health and /metrics."""

import uvicorn

from services.order_gateway.app import create_app
from services.order_gateway.config import ServiceSettings

if __name__ == "__main__":
    settings = ServiceSettings()
    uvicorn.run(
        create_app(), host=settings.host, port=settings.port, access_log=False, log_config=None
    )
