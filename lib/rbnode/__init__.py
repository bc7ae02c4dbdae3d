"""rbnode: the node application for rbAmp energy monitors (MicroPython)."""
__version__ = "0.1.0"
