# Short-hands; CI runs .ci/run.
.PHONY: check test bench demo

check:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

test:
	cargo test

bench:
	bash scripts/bench_speed.sh

demo:
	cargo run --release -- info ../shared/weights/vgg16-conv-hed/vgg16_conv_hed.safetensors
