# Two entry points for a fresh Debian/Ubuntu machine (Python >= 3.10):
#   make booth   set up, build the reference models on first run, serve the kiosk on :8080
#   make test    set up (system packages too), build the models, run ruff, mypy and pytest
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Debian packages the test suite drives for real: the browser, strace, network namespaces,
# and the headers systemd-python compiles against; systemd-analyze, nft and dnsmasq check the
# units, firewall and hotspot files provisioning writes.
APT_PACKAGES := chromium strace iproute2 libsystemd-dev pkg-config systemd nftables dnsmasq-base
# Booth hardware: GStreamer cameras, a real IPP printer (ippeveprinter) and CUPS for the tests;
# GStreamer also runs the kiss video's hardware-encoder path with x264enc standing in for the
# Jetson's encoder.
APT_PACKAGES += gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
	cups cups-ipp-utils avahi-daemon dbus
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: gpu-check booth test system-deps lint typecheck pytest models gallery clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.booth: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.booth

models: $(VENV)/.booth
	$(PY) -m appliance build

booth: $(VENV)/.booth models
	$(PY) -m appliance serve

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

pytest: $(VENV)/.dev models
	$(PY) -m pytest -q

test: system-deps $(VENV)/.dev lint pytest

# The TensorRT backend's buffers and wipes on a real NVIDIA GPU (needs pycuda; skipped without).
gpu-check: $(VENV)/.dev
	$(PY) -m pytest -q -rA -m gpu tests/gpu

# Every effect on scikit-image's sample faces as an HTML page in a tmpfs folder, to look at.
gallery: $(VENV)/.dev models
	PYTHONPATH=. $(PY) tools/gallery.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
