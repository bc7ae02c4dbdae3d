# Host board `esp32`: the deep-sleep wake sources the firmware uses (the rest of the ESP32
# module is not modelled). See tools/host/board/README.md.
import _board

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True


def wake_on_ext0(pin, level=WAKEUP_ALL_LOW):
    """Wake from deep sleep when `pin` is at `level` (None: no ext0 wake)."""
    _board.ext0 = None if pin is None else (pin.id, 1 if level else 0)
