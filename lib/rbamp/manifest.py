# The rbamp driver in a MicroPython image (firmware/manifest.py includes it; another
# application can too). smbus.py, the smbus2 adapter for CPython on Linux boards, stays out:
# nothing on a chip can use it.
# No metadata() here: an included manifest shares its includer's metadata, and MicroPython's
# manifestfile.py refuses a second call ("Duplicate call to metadata()"); the application's
# manifest has one. The driver's version is rbamp.__version__.

package("rbamp", files=["__init__.py", "_regs.py", "_time.py", "aio.py", "commissioning.py",
                        "device.py", "energy.py", "errors.py", "fleet.py", "fleet_config.py",
                        "period.py", "rt.py", "transport.py"], base_path="..")
