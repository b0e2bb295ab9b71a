#!/usr/bin/env bash
# Download, here, the wheels micronbert needs on the lent GPU machine and that its image lacks (PyAV, openpyxl and
# its et_xmlfile, python-calamine), for its Python 3.12 on x86-64, into .whl/ (git-ignored; about 37 MB).
# Then run benchmarks/gpu_session.sh there with .whl carried along (see that script).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl \
    av==18.1.0 openpyxl==3.1.5 et_xmlfile==2.0.0 python-calamine==0.9.1
ls -l .whl
