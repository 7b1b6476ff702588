"""coldstart: podcast and audiobook recommendations for listeners known only by their music."""

from coldstart.core.config import Settings, get_settings
from coldstart.core.store import Store

__all__ = ["Settings", "Store", "get_settings", "__version__"]
__version__ = "0.1.0"
