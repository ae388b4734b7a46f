"""``python -m services.risk_engine``: the risk engine with /health and /metrics."""

import uvicorn

from services.risk_engine.app import create_app
from services.risk_engine.config import ServiceSettings

if __name__ == "__main__":
    settings = ServiceSettings()
    uvicorn.run(
        create_app(), host=settings.host, port=settings.port, access_log=False, log_config=None
    )
