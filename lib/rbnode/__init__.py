"""rbnode: the node application for rbAmp energy monitors (MicroPython)."""
__version__ = "0.1.0"


def forget(name):
    """Drop module rbnode.<name> ("net.discovery") from the heap: a module needed only now
    and then (at boot, at a connect) costs a chip its functions, classes and tables while it
    stays imported. The next import loads it again (frozen: from flash, quickly)."""
    import sys
    sys.modules.pop("rbnode." + name, None)
    pkg, _, leaf = ("rbnode." + name).rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None and hasattr(parent, leaf):
        delattr(parent, leaf)
