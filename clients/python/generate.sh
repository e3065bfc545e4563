#!/usr/bin/env bash
# Generates the Python gRPC stubs of every ktrdr contract (proto/) into ./generated, with
# grpcio-tools (pip install -r requirements.txt). The output is not committed: ktrdr_client.py
# runs this generation itself on first import when ./generated is missing or older than proto/.
set -euo pipefail
cd "$(dirname "$0")"
exec python3 -c 'import ktrdr_client; ktrdr_client.generate_stubs(force=True); print("stubs in", ktrdr_client.GENERATED)'
