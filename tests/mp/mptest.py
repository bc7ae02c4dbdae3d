# Tiny test runner for MicroPython scripts (see tests/conftest.py): runs the test
# functions named on the command line, in that order, and prints one @@ line each.
import sys


class Skip(Exception):
    pass


def run(g):
    names = sys.argv[1:] or sorted(k for k in g if k.startswith("test_"))
    for n in names:
        try:
            g[n]()
            print("@@ PASS", n)
        except Skip as e:
            print("@@ SKIP", n, e)
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            print("@@ FAIL", n)
            sys.print_exception(e)


def eq(a, b, msg=""):
    if a != b:
        raise AssertionError("%r != %r %s" % (a, b, msg))


def near(a, b, tol, msg=""):
    if abs(a - b) > tol:
        raise AssertionError("%r not within %r of %r %s" % (a, tol, b, msg))


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError("%s not raised by %r" % (exc.__name__, fn))
