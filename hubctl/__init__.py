"""hubctl: a command-line smart-city data hub (NGSI-LD, Delta Lake, DuckDB)."""

__all__ = ["__version__"]
__version__ = "0.1.0"
