.PHONY: setup run test lint model bench
setup:
	bash scripts/setup.sh
run:          ## README command 1
	bash scripts/run_main.sh
test:         ## README command 2 (what CI runs)
	bash scripts/run_tests.sh
lint:
	.venv/bin/ruff check cytoviz tests benchmarks
