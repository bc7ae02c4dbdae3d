"""The firmware's version: the image's, stamped at build time (tools/deps.py writes the
frozen rbnode_build module); running from source, the package's."""
try:
    from rbnode_build import VERSION
except ImportError:
    from . import __version__ as VERSION

__all__ = ("VERSION",)
