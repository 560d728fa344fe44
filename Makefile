# Entry points: `make` builds build/vigil, `make demo` installs what is
# missing and runs the demo, `make check` installs what is missing and runs
# every test.
.PHONY: all deps build asan fuzz check demo clean

JOBS ?= $(shell nproc)

all: build

deps:
	bash scripts/install-deps.sh

build:
	cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIL_TESTS=OFF >/dev/null
	cmake --build build -j $(JOBS)

asan:
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVIGIL_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)

fuzz:
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DVIGIL_FUZZ=ON -DVIGIL_TESTS=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS)

check: deps asan fuzz
	bash tests/run.sh

demo: deps build
	bash scripts/demo.sh

clean:
	rm -rf build build-asan build-fuzz
