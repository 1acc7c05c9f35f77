"""The shared things a plugin receives when it is made: config, store, pricing, logger.

Built once per process in the app's lifespan; nothing here is created per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config
    from .pricing import Pricing
    from .providers.base import Provider
    from .store import Store

__all__ = ["Services"]


class Services:
    """What plugins share. `store` is opened in the lifespan before `startup` hooks run."""

    def __init__(
        self, config: Config, pricing: Pricing, logger: Any, store: Store | None = None
    ) -> None:
        self.config = config
        self.pricing = pricing
        self.logger = logger
        self.store = store
        self.providers: dict[str, Provider] = {}
        self.secrets: set[str] = set()
