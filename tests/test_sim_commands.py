"""Bench vs rbamp-protocol.md §5, §9, §10: every command, config rules, errors, events."""

from simrig import MS, Rig
from tools.host.sim.bus import NACK_ADDR, NACK_DATA, OK

S = 1000000


def test_nop_is_accepted_and_unknown_opcodes_are_refused():
    r = Rig()
    assert r.cmd(0x00) == OK and r.err() == 0
    for op in (0x02, 0x03, 0x20, 0x33, 0x37, 0x99):
        r.u8(0x2A)
        assert r.cmd(op) == OK and r.err() == 0xFE, hex(op)
    assert r.u8(0x00) & 0x02                       # STATUS.ERROR mirrors REG_ERROR


def test_error_event_bit_is_asynchronous():
    r = Rig()
    r.wr(0x2A, 0xFF)
    r.cmd(0x99)
    assert r.u8(0x2A) & 0x08 == 0                  # not at once (§10.2)
    r.wait(400 * MS)
    assert r.u8(0x2A) & 0x08                       # ~200-300 ms later
    r.wr(0x2A, 0x08)                               # W1C alone: REG_ERROR was reset by this write
    r.wait(400 * MS)
    assert r.u8(0x2A) & 0x08 == 0


def test_clear_error_and_durable_bit_sequence():
    r = Rig()
    r.cmd(0x99)
    r.wait(400 * MS)
    assert r.err() == 0xFE and r.u8(0x2A) & 0x08
    r.cmd(0x31)                                    # CLEAR_ERROR
    r.wr(0x2A, 0x08)
    r.wait(300 * MS)
    assert r.err() == 0 and r.u8(0x2A) & 0x08 == 0


def test_clone_condition_is_pinned():
    r = Rig([{"variant": "UI1", "boot_error": 0xF9}])
    assert r.err() == 0xF9
    r.cmd(0x31)
    assert r.err() == 0xF9


def test_blocked_factory_opcodes_in_production():
    r = Rig()
    before = r.m.flash.writes
    assert r.cmd(0x26) == OK and r.err() == 0xFE   # SAVE_GAINS blocked
    assert r.cmd(0xAA) == OK and r.err() == 0xFE   # FACTORY_RESET blocked
    assert r.m.flash.writes == before
    r.wr(0xF0, 0x12)                               # factory gain write: develop-gated
    assert r.err() == 0xFE


def test_factory_reset_in_develop_mode_erases_user_config():
    r = Rig([{"variant": "UI1", "mode": 1, "label": "boiler", "address": 0x55}])
    assert r.u8(0x04, 0x55) == 1
    r.cmd(0xAA, 0x55)
    r.wait(1400 * MS)
    assert r.xfer(0x50)[0] == NACK_ADDR            # still busy (1500 ms)
    r.wait(200 * MS)
    assert r.err() == 0xFB and r.rd(0x68, 8) == bytes(8) and r.u8(0x25) == 0


def test_reset_command_window_and_ram_state():
    r = Rig()
    r.wr(0x2B, 0x01)
    r.wr(0x2C, 0x10)
    r.wr(0x28, 0x05)
    r.wr(0x2A, 0xFF)
    assert r.cmd(0x01) == NACK_DATA                 # reset fires inside the transfer (§2.7)
    r.wait(290 * MS)
    assert r.xfer(0x50)[0] == NACK_ADDR
    r.wait(20 * MS)
    assert r.u8(0x2A) == 0x20 and r.u8(0x2B) == 0 and r.u16(0x2C) == 0xFFFF
    assert r.u8(0x4A) == 0x04 and r.u8(0x28) == 0   # software reset; group not saved
    assert r.u8(0x00) & 1                           # booted meanwhile: READY


def test_save_user_config_persists_and_clears_virgin_error():
    r = Rig([{"variant": "UI2", "virgin": True}])
    assert r.err() == 0xFB and r.u8(0x2A) & 0x08    # normal on a virgin module (§9.4)
    assert r.u8(0x25) == 0 and r.rd(0x51, 3) == b"\x00\x00\x00"
    r.wr(0x25, 1)
    r.wr(0x05, 3)
    r.cmd(0x28)
    r.wr(0x05, 6)
    r.cmd(0x29)
    for i, ch in enumerate(b"attic"):
        r.wr(0x68 + i, ch)
    r.wr(0x27, 0x01)
    r.wr(0x28, 7)
    assert r.cmd(0x32) == OK
    w = r.m.flash.writes
    assert r.xfer(0x50)[0] == NACK_ADDR             # flash window: NACK everything
    r.wait(700 * MS)
    assert r.err() == 0x00 and w == 1
    r.cmd(0x01)
    r.wait(300 * MS)
    assert r.rd(0x51, 3) == b"\x03\x06\x00" and r.rd(0x68, 5) == b"attic"
    assert r.u8(0x25) == 1 and r.u8(0x27) == 1 and r.u8(0x28) == 7
    assert r.u8(0x2A) & 0x08 == 0                   # no boot error any more


def test_read_back_is_not_persistence():
    r = Rig()
    r.wr(0x05, 2)
    r.cmd(0x28)
    assert r.u8(0x51) == 2                          # applied in RAM
    r.cmd(0x01)
    r.wait(300 * MS)
    assert r.u8(0x51) == 3                          # reverted: never saved


def test_class_first_guard_and_code_sets():
    r = Rig([{"variant": "UI3", "sensor_class": 0, "ct": [0, 0, 0]}])
    r.wr(0x05, 3)
    r.cmd(0x28)
    assert r.err() == 0xFE and r.u8(0x51) == 0      # class UNSET: bind refused
    r.wr(0x25, 1)
    for code, ok in ((1, True), (2, True), (3, True), (4, True), (5, False), (6, True),
                     (7, False), (0, False), (9, False)):
        r.wr(0x05, code)                            # staging alone is not validated
        assert r.err() == 0
        r.cmd(0x2A)
        assert (r.err() == 0) == ok, code
        if ok:
            assert r.u8(0x53) == code
    assert r.u8(0x2A) & 0x10                         # CONFIG_CHANGED


def test_all_codes_option_accepts_five_and_seven():
    r = Rig([{"variant": "UI1", "ct_codes": "all"}])
    for code in (5, 7):
        r.wr(0x05, code)
        r.cmd(0x28)
        assert r.err() == 0 and r.u8(0x51) == code


def test_class_change_resets_staging_and_bindings():
    r = Rig([{"variant": "UI2", "ct": [3, 4]}])
    r.wr(0x05, 2)
    r.wr(0x25, 1)                                  # same class: harmless
    assert r.u8(0x05) == 2 and r.rd(0x51, 2) == b"\x03\x04"
    r.wr(0x25, 3)
    assert r.u8(0x05) == 0 and r.rd(0x51, 2) == b"\x00\x00"
    r.wr(0x25, 4)
    assert r.err() == 0xFE and r.u8(0x25) == 3      # out-of-range enum
    r.wr(0x25, 1)
    r.wr(0x05, 3)
    r.cmd(0x28)
    assert r.err() == 0


def test_bind_on_absent_channel_is_refused():
    r = Rig([{"variant": "UI1"}])
    r.wr(0x05, 3)
    r.cmd(0x29)
    assert r.err() == 0xFE
    assert r.rd(0x51, 3) == b"\x03\x00\x00"


def test_fleet_digest_and_mask_register_validation():
    r = Rig([{"variant": "I1"}])
    r.wr(0x27, 0x03)
    assert r.err() == 0xFE and r.u8(0x27) == 0      # reserved bits
    r.wr(0x29, 0x02)
    assert r.err() == 0xFE                          # U in digest on an I-only variant
    r.wr(0x29, 0x01)
    assert r.err() == 0 and r.u8(0x29) == 1


def test_address_change_two_phase_commit():
    r = Rig()
    r.wr(0x30, 0x07)
    assert r.err() == 0xFE and r.u8(0x30) == 0x50   # out of range: nothing staged
    r.cmd(0x30)
    assert r.err() == 0xFE                          # commit without magic
    r.wr(0x30, 0x52)
    assert r.u8(0x30) == 0x52                       # reads return the candidate
    r.wr(0x31, 0xA5)
    r.cmd(0x30)
    assert r.xfer(0x50)[0] == NACK_ADDR             # 700 ms flash window
    r.wait(700 * MS)
    assert r.err() == 0 and r.xfer(0x52)[0] == NACK_ADDR   # no reset: old address active
    r.cmd(0x01)
    r.wait(300 * MS)
    assert r.xfer(0x50)[0] == NACK_ADDR and r.u8(0x30, 0x52) == 0x52


def test_address_magic_expires_and_is_consumed():
    r = Rig()
    r.wr(0x30, 0x60)
    r.wr(0x31, 0xA5)
    r.wait(5001 * MS)
    r.cmd(0x30)
    assert r.err() == 0xFE                          # armed more than 5 s ago
    r.wr(0x31, 0xA5)
    r.wr(0x30, 0x04)                               # a failed staging write leaves 0x60
    r.cmd(0x30)
    r.wait(700 * MS)
    assert r.err() == 0
    r.cmd(0x30)
    assert r.err() == 0xFE                          # magic consumed by the commit
    r.cmd(0x01)
    r.wait(300 * MS)
    assert r.u8(0x30, 0x60) == 0x60


def test_reset_drops_a_staged_address():
    r = Rig()
    r.wr(0x30, 0x61)
    r.wr(0x31, 0xA5)
    r.cmd(0x01)
    r.wait(300 * MS)
    assert r.u8(0x30) == 0x50
    r.cmd(0x30)
    assert r.err() == 0xFE


def test_power_loss_during_flash_write_corrupts_the_page():
    r = Rig([{"variant": "UI1", "address": 0x5A, "label": "garage"}])
    r.cmd(0x32, 0x5A)
    r.wait(300 * MS)
    r.m.power_off(r.clock.t)
    r.m.power_on(r.clock.t)
    r.wait(300 * MS)
    assert r.xfer(0x5A)[0] == NACK_ADDR
    assert r.err(0x50) == 0xFB and r.rd(0x68, 8) == bytes(8)   # defaults, address 0x50


def test_label_bytewise_and_burst_write_stores_first_byte_only():
    r = Rig()
    r.xfer(0x50, b"\x68boiler")                     # one burst write
    assert r.rd(0x68, 8) == b"b" + bytes(7)
    for i, ch in enumerate(b"boiler\x00\x00"):
        r.wr(0x68 + i, ch)
    assert r.rd(0x68, 8) == b"boiler\x00\x00"


def test_thresholds_set_events_and_digest_layouts():
    r = Rig([{"variant": "UI1", "channels": [{"load": 2875, "pf": 1.0}]}])   # 12.5 A
    r.wr(0x2A, 0xFF)
    r.wr(0x2C, 0xE2)
    r.wr(0x2D, 0x04)                                # 1250 = 12.50 A
    assert r.u16(0x2C) == 1250
    r.wait(400 * MS)
    assert r.u8(0x2A) & 0x02 == 0                   # not above
    r.wr(0x2C, 0xE1)                                # 12.49 A
    r.wait(400 * MS)
    assert r.u8(0x2A) & 0x02
    r.wr(0x2E, 0x00)
    r.wr(0x2F, 0x0B)                                # 2816 W < 2875 W
    r.wait(400 * MS)
    assert r.u8(0x2A) & 0x04
    r.wr(0x29, 0x0F)
    r.wait(250 * MS)
    d = r.rd(0x70, 22)
    seq = d[1]
    assert d[2:4] == (1250).to_bytes(2, "little") and d[4:6] == (2300).to_bytes(2, "little")
    assert d[6:8] == (2875).to_bytes(2, "little") and d[8] == 100 and d[9:] == bytes(13)
    r.wait(200 * MS)
    assert r.rd(0x70, 22)[1] == (seq + 1) & 0xFF    # SEQ counts RT commits


def test_digest_sizes_per_variant():
    r = Rig([{"variant": "UI3", "channels": [{"load": 100}, {"load": -20}, {"load": 5}]},
             {"variant": "I3", "address": 0x51}])
    r.wr(0x29, 0x0F)
    r.wr(0x29, 0x01, 0x51)
    r.wait(250 * MS)
    ui3, i3 = r.rd(0x70, 22), r.rd(0x70, 22, 0x51)
    # UI3 full mask: 2 header + 6 I + 2 U + 6 P + 3 PF = 19 bytes (§11, §18 #13)
    assert ui3[19:] == bytes(3) and ui3[12:14] == (-20).to_bytes(2, "little", signed=True)
    assert i3[8:] == bytes(14)                      # I3 with bit0 only: 8 bytes


def test_capture_and_lut_slot_validation():
    r = Rig()
    r.wr(0x09, 3)
    assert r.err() == 0 and r.u8(0x09) == 3
    r.wr(0x09, 4)
    assert r.err() == 0xFE
    assert r.u8(0x18) == 0                          # no capture yet
