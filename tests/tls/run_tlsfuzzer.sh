#!/usr/bin/env bash
# Run tlsfuzzer's TLS 1.3 server scripts against `python -m fata.bench.servers.tls`.
# Not part of CI (tlsfuzzer is not on PyPI).  Usage:
#   tests/tls/run_tlsfuzzer.sh TLSFUZZER_DIR TLSLITE_DIR CERT KEY [OUT_DIR]
# with checkouts of github.com/tlsfuzzer/tlsfuzzer and tlslite-ng (both from git: the PyPI
# tlslite-ng is too old for tlsfuzzer's master) and a Python that has `ecdsa` installed
# (PYTHON, default python3).  Results: OUT_DIR/summary.txt, one line per script.
set -u
fuzzer=$1 tlslite=$2 cert=$3 key=$4 out=${5:-tlsfuzzer-results}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
: > "$out/summary.txt"
port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
H=$(port); E=$(port)
PYTHONPATH="$here/core" "$here/.venv/bin/python" -m fata.bench.servers.tls --cert "$cert" --key "$key" \
  --port "$H" --ciphers all --verbose 2> "$out/server.log" > /dev/null &
s1=$!
PYTHONPATH="$here/core" "$here/.venv/bin/python" -m fata.bench.servers.tls --cert "$cert" --key "$key" \
  --port "$E" --echo 2> /dev/null > /dev/null &
s2=$!
trap 'kill $s1 $s2 2>/dev/null' EXIT
sleep 2
run() {
  name=$1 p=$2; shift 2
  (cd "$fuzzer" && PYTHONPATH="$tlslite:$fuzzer" timeout 900 "$python" \
    "scripts/test-tls13-$name.py" -h 127.0.0.1 -p "$p" "$@" > "$out/$name.log" 2>&1)
  echo "$name rc=$? args='$*' $(grep -E '^(TOTAL|PASS|FAIL):' "$out/$name.log" | tr '\n' ' ')" \
    | tee -a "$out/summary.txt"
}
for s in conversation ccs empty-alert finished finished-plaintext invalid-ciphers \
    keyshare-omitted keyupdate legacy-version multiple-ccs-messages nociphers pkcs-signature \
    record-padding rsa-signatures serverhello-random session-resumption signature-algorithms \
    symetric-ciphers unencrypted-alert zero-content-type zero-length-data ecdhe-curves \
    crfg-curves connection-abort large-number-of-extensions record-layer-limits; do
  run "$s" "$H"
done
for s in 0rtt-garbage hrr shuffled-extentions unrecognised-groups; do
  run "$s" "$H" --cookie
done
run obsolete-curves "$H" --cookie --relaxed
run no-unknown-groups "$H" --cookie --groups x25519,secp256r1,secp384r1,x448,secp521r1
run count-tickets "$H" -t 2
run version-negotiation "$H" -C TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 -d -M
run lengths "$E" -n 300
