#!/usr/bin/env bash
# Idempotent set-up: .venv/ with torch, torchvision and selfsup (dev extra), plus
# Debian's Fashion-MNIST and headless Chromium when apt is available. Safe to run again; it skips what is done.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
TORCH_PIN="torch==2.14.1 torchvision==0.29.1"
EXTRAS="${SELFSUP_EXTRAS:-dev}"

if [ ! -d /usr/share/datasets/fashion-mnist ] && [ -z "${SELFSUP_DATA_DIR:-}" ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "setup: installing Debian package dataset-fashion-mnist"
        (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
            || echo "setup: could not install dataset-fashion-mnist; set SELFSUP_DATA_DIR to its idx .gz files"
    else
        echo "setup: Fashion-MNIST not found; as root run: apt-get install dataset-fashion-mnist"
    fi
fi

# Headless Chromium renders report.html in the test suite (tests/report); without it that one
# test skips with the reason.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "setup: installing Debian packages chromium chromium-driver (report test)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq chromium chromium-driver >/dev/null) \
            || echo "setup: could not install chromium; the report rendering test will skip"
    else
        echo "setup: chromium not found; as root run: apt-get install chromium chromium-driver"
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
fi

# Re-install only when the project's requirements change.
stamp=".venv/.selfsup-stamp"
want="$(cat pyproject.toml setup.sh | sha256sum | cut -d' ' -f1) $EXTRAS"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
# pip warns once per configured local index that lacks a package; those lines are noise here
quiet_pip() { .venv/bin/pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }; }
if ! .venv/bin/python -c "import torch, torchvision" >/dev/null 2>&1; then
    echo "setup: installing $TORCH_PIN (from local disk where available)"
    quiet_pip $TORCH_PIN
fi
echo "setup: installing selfsup[$EXTRAS]"
quiet_pip -e ".[$EXTRAS]"
echo "$want" > "$stamp"
echo "setup: done (.venv/bin/selfsup)"
