#!/usr/bin/env bash
# One-time (idempotent) setup of the host: .venv with pinned tools, mosquitto, mqtt_as.
# Fast when everything is already there. Called by `make setup`, `make run`, `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. tools/deps.env
VENV=$ROOT/.venv
MPLIB=${MICROPY_LIB:-$HOME/.micropython/lib}
say() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

# 1. Python virtual environment with the pinned PyPI packages
stamp=$VENV/.requirements.sha256
want=$(sha256sum tools/requirements.txt | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing pinned packages from tools/requirements.txt"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tools/requirements.txt \
    || die "pip install failed (see above); the package index must be reachable"
  echo "$want" > "$stamp"
fi

# 2. mosquitto (Debian package) for the private test broker
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing mosquitto (apt-get)"
    (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto >/dev/null) \
      || die "apt-get install mosquitto failed"
  else
    die "mosquitto is missing: run 'sudo apt-get install mosquitto' (Debian/Ubuntu) and retry"
  fi
fi

# 2b. strace (Debian package): the update tests cut the power at exact system calls with it
# (tests/test_ota.py); without it that test is skipped, saying so
if ! command -v strace >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing strace (apt-get)"
    (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q strace >/dev/null) \
      || say "apt-get install strace failed: the power-cut test of the update is skipped"
  fi
fi

# 3. mqtt_as pinned to a commit, in the unix port's user library ($MPLIB)
mqtt_as_ok() {
  [ -f "$MPLIB/mqtt_as/__init__.py" ] && \
    [ "$(sha256sum "$MPLIB/mqtt_as/__init__.py" | cut -d' ' -f1)" = "$MQTT_AS_SHA256" ]
}
install_from_src() {  # a git repository (bare or not) or a plain checkout
  local src=$1 tmp
  tmp=$(mktemp -d)
  if git --git-dir="$src" rev-parse -q --verify "$MQTT_AS_COMMIT^{commit}" >/dev/null 2>&1; then
    git --git-dir="$src" archive "$MQTT_AS_COMMIT" mqtt_as | tar -x -C "$tmp"
  elif git -C "$src" rev-parse -q --verify "$MQTT_AS_COMMIT^{commit}" >/dev/null 2>&1; then
    git -C "$src" archive "$MQTT_AS_COMMIT" mqtt_as | tar -x -C "$tmp"
  elif [ -f "$src/mqtt_as/__init__.py" ]; then
    cp -r "$src/mqtt_as" "$tmp/"
  else
    rm -rf "$tmp"; return 1
  fi
  mkdir -p "$MPLIB/mqtt_as"
  for f in $MQTT_AS_FILES; do cp "$tmp/mqtt_as/$f" "$MPLIB/mqtt_as/$f"; done
  rm -rf "$tmp"
}
if ! mqtt_as_ok; then
  if [ -f "$MPLIB/mqtt_as/__init__.py" ] && [ -z "${MQTT_AS_SRC:-}" ]; then
    say "WARNING: $MPLIB/mqtt_as is not the pinned commit $MQTT_AS_COMMIT; trying to replace it"
  fi
  if [ -n "${MQTT_AS_SRC:-}" ]; then
    say "installing mqtt_as $MQTT_AS_COMMIT from MQTT_AS_SRC=$MQTT_AS_SRC"
    install_from_src "$MQTT_AS_SRC" || die "MQTT_AS_SRC=$MQTT_AS_SRC has neither commit $MQTT_AS_COMMIT nor mqtt_as/"
  else
    say "installing mqtt_as $MQTT_AS_COMMIT with mip"
    "$VENV/bin/micropython" -m mip install --target "$MPLIB" "$MQTT_AS_REPO@$MQTT_AS_COMMIT" >/dev/null 2>&1 || true
  fi
  if ! mqtt_as_ok; then
    if [ -f "$MPLIB/mqtt_as/__init__.py" ]; then
      say "WARNING: using the installed $MPLIB/mqtt_as, which is not the pinned commit"
    else
      die "mqtt_as is not installed and could not be fetched (no GitHub access?).
  Do one of:
    - on a machine with internet: micropython -m mip install --target $MPLIB $MQTT_AS_REPO@$MQTT_AS_COMMIT
    - git clone https://github.com/peterhinch/micropython-mqtt and run: MQTT_AS_SRC=<that clone> make setup
    - copy mqtt_as/__init__.py and mqtt_as/mqtt_v5_properties.py of commit $MQTT_AS_COMMIT into $MPLIB/mqtt_as/"
    fi
  fi
fi
MICROPYPATH="$ROOT/tools/host/board:.frozen:$MPLIB" "$VENV/bin/micropython" -c "import mqtt_as" \
  || die "mqtt_as in $MPLIB does not import on the unix port (with the host board shims)"
say "ok: $("$VENV/bin/micropython" -c 'import sys; print(sys.implementation.name, sys.implementation.version[:3])'), mosquitto, mqtt_as @ ${MQTT_AS_COMMIT:0:10}"
