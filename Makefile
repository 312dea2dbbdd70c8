.PHONY: setup run test lint model bench docs docs-full
setup:
	bash scripts/setup.sh
run:          ## README command 1
	bash scripts/run_main.sh
test:         ## README command 2 (what CI runs)
	bash scripts/run_tests.sh
lint:
	.venv/bin/ruff check cytoviz tests benchmarks
docs:         ## the documentation site, warnings as errors (also run by scripts/run_tests.sh)
	.venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html
docs-full:    ## the same, executing the notebooks in fast mode (minutes; outputs cached)
	CYTOVIZ_DOCS_EXECUTE=1 .venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html
