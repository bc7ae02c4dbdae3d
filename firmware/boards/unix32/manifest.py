# The chips' memory model on the host (tools/boards.py, "unix32"): the unix port built 32-bit
# with float32, with the standard variant's frozen modules and the application frozen.
include("$(PORT_DIR)/variants/standard/manifest.py")
include("../../manifest.py")

# The host board (tools/host/board: machine, network, esp32 backed by the simulator) frozen
# too: on a chip those are C modules, so their code is not in the heap there either. Frozen
# `machine` shadows the built-in only with .frozen ahead of the built-ins' names on
# MICROPYPATH (hostenv.micropypath(frozen_first=True)); the tests put the shims' source first.
import os

for _f in sorted(os.listdir("../../../tools/host/board")):
    if _f.endswith(".py"):
        module(_f, base_path="../../../tools/host/board")
