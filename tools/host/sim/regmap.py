"""Register map, opcodes and codes of the rbAmp module (rbamp-protocol.md §3, §5, §10).

The simulator keeps its own copy of the map on purpose: it is written from the protocol
document, not from the driver, so a wrong constant in the driver shows up as a test failure.
Plain ints (no const()) because this file also runs under CPython.
"""

# §3.2 control block
STATUS = 0x00
COMMAND = 0x01
ERROR = 0x02
VERSION = 0x03
MODE = 0x04
CT_MODEL = 0x05
PHASE_SAMPLES = 0x06
PERIOD_VALID = 0x07
# §3.3 diagnostics
LUT_VALID = 0x08
LUT_SLOT = 0x09
ADC_MEAN_U = 0x10
CAPTURE_STATUS = 0x18
CAPTURE_PAGE = 0x19
CAPTURE_WINDOW = 0x1A
# §3.4 system
AC_FREQ = 0x20
AC_PERIOD = 0x21
CALIBRATION = 0x23
TOPOLOGY = 0x24
SENSOR_CLASS = 0x25
PHASE_FRACTION = 0x26
# §3.5 fleet, events, thresholds
FLEET_CONFIG = 0x27
GROUP_ID = 0x28
DIGEST_CONFIG = 0x29
EVENT_FLAGS = 0x2A
EVENT_MASK = 0x2B
THRESH_I_HI = 0x2C
THRESH_P_HI = 0x2E
# §3.6 address change
I2C_ADDRESS = 0x30
ADDR_COMMIT_MAGIC = 0x31
# §3.7 health
UPTIME_S = 0x46
RESET_CAUSE = 0x4A
I2C_ERR_COUNT = 0x4B
I2C_REINIT_COUNT = 0x4D
ZC_OFFSET = 0x4E
# §3.8 verify mirrors
CT_MODEL_CH0 = 0x51
# §3.9 identity
PRODUCT_ID = 0x54
HW_VARIANT = 0x55
FW_TIER = 0x56
CAPABILITY = 0x57
GC_TICK = 0x59
UID = 0x5C
LABEL = 0x68
# §3.10 digest, §3.11 RT block
DIGEST = 0x70
DIGEST_LEN = 22
RT_BLOCK = 0x86
RT_LEN = 56
U_RMS = 0x86
U_PEAK = 0x8A
I_RMS = 0x8E
I_PEAK = 0x9A
P_REAL = 0xA6
PF = 0xB2
# §3.12 period block
PERIOD_COMMIT_CNT = 0xBE
PERIOD_AVG_P_CH1 = 0xC2
PERIOD_AVG_P_CH2 = 0xC6
PERIOD_MS = 0xCA
RT_STATUS = 0xCE
# §3.13
Q_REAC = 0xD0
PERIOD_AVG_P = 0xDC
PERIOD_MAX_P = 0xE0
NOISE_FLOORS = 0xE4
PERIOD_LATCH_MS = 0xEC
GAINS = 0xF0

# §5 opcodes
OP_NOP = 0x00
OP_RESET = 0x01
OP_SAVE_GAINS = 0x26
OP_LATCH = 0x27
OP_SET_CT_CH0 = 0x28
OP_SET_CT_CH1 = 0x29
OP_SET_CT_CH2 = 0x2A
OP_COMMIT_ADDR = 0x30
OP_CLEAR_ERROR = 0x31
OP_SAVE_USER_CONFIG = 0x32
OP_CAPTURE_RAW = 0x38
OP_FACTORY_RESET = 0xAA

# §10.1 error codes
ERR_OK = 0x00
ERR_CLONE = 0xF9
ERR_LUT_BAD = 0xFA
ERR_FLASH_PARAMS_BAD = 0xFB
ERR_NOT_READY = 0xFC
ERR_SENSOR_OVERFLOW = 0xFD
ERR_PARAM = 0xFE
ERR_UNHANDLED = 0xFF
CONDITION_CODES = (ERR_CLONE, ERR_LUT_BAD, ERR_FLASH_PARAMS_BAD)

# §3.13 bit fields
ST_READY = 0x01
ST_ERROR = 0x02
ST_EVENTS = 0x04
EV_PERIOD_READY = 0x01
EV_THRESH_I = 0x02
EV_THRESH_P = 0x04
EV_ERROR = 0x08
EV_CONFIG_CHANGED = 0x10
EV_RESET = 0x20
RC_PIN = 0x01
RC_POR = 0x02
RC_SOFTWARE = 0x04
RC_IWDG = 0x08

# §1.1 variants: HW_VARIANT -> (name, channels, has_voltage)
VARIANTS = {
    1: ("UI1", 1, True),
    2: ("UI2", 2, True),
    3: ("UI3", 3, True),
    4: ("I1", 1, False),
    5: ("I2", 2, False),
    6: ("I3", 3, False),
}
VARIANT_BY_NAME = {v[0]: k for k, v in VARIANTS.items()}
CAP_UI = 0x079E
CAP_I = 0x069E

# §9.1 CT model codes (class SCT_013) -> rated primary current in A
CT_RATING = {1: 5.0, 2: 10.0, 3: 30.0, 4: 50.0, 5: 100.0, 6: 20.0, 7: 60.0}
CT_CODES_BENCH = (1, 2, 3, 4, 6)     # v1.3 as observed on the simulator [BENCH]
CT_CODES_ALL = (1, 2, 3, 4, 5, 6, 7)  # v1.3 reference text
CT_CODES_LEGACY = (1, 2, 3, 4, 5)     # v1.0-v1.2

# §2.7 / §5.1 busy windows in microseconds
BOOT_ACK_US = 10000
RESET_BUSY_US = 300000
FLASH_BUSY_US = 700000
FACTORY_BUSY_US = 1500000
ARM_TIMEOUT_US = 5000000
WINDOW_US = 200000
GC_MAGIC = 0xA5
COMMIT_MAGIC = 0xA5
