# Short-hands; CI runs .ci/run.
.PHONY: check test python bench demo

check:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

test:
	cargo test

bench:
	bash scripts/bench_speed.sh

demo:
	cargo run --release -- info ../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors

python:
	python3 -m venv target/py-venv
	target/py-venv/bin/pip install "./python[test]"
	target/py-venv/bin/python -m pytest -q python/tests
