# Two commands on a fresh Debian 12 machine with Python 3.11: `make run` and `make test`.
# Both are idempotent and stand on `make setup` (the venv and the installs alone).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APPLIANCE_PROJECTS := $(wildcard appliances/*/pyproject.toml)
# Debian tools the tests and benchmarks talk to (real peers), installed when run as root.
DEBIAN_TOOLS := dnsutils knot-dnsutils bind9 nsd knot dnsperf netcat-openbsd openssl curl \
                iproute2 util-linux iputils-ping procps dnsmasq-base ethtool binutils \
                wrk nginx-light nghttp2-client xenstore-utils libxen-dev openvswitch-switch
# Xen's own xenstore tools that will not install without a hypervisor, unpacked (dpkg -x).
XEN_UTILS := .tools/xen-utils
DNS_PORT ?= 5353
WWW_PORT ?= 8080
WWW_TLS_PORT ?= 8443

.PHONY: setup run run-www test tools lint images clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py $(wildcard core/fata/platform/*.c) $(APPLIANCE_PROJECTS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "fata needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	@# The C modules (batched UDP and TAP I/O) want a compiler and Python's headers; as
	@# root, get them. Without them the install still works, with one system call per
	@# datagram or frame from Python.
	@if [ "$$(id -u)" = 0 ]; then \
	  need=; command -v cc >/dev/null || need="gcc libc6-dev"; \
	  $(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
	    || need="$$need python3-dev"; \
	  if [ -n "$$need" ]; then echo "installing $$need for fata.platform._mmsg and _frames"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $$need >/dev/null; fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' $(foreach p,$(APPLIANCE_PROJECTS),-e '$(patsubst %/,%,$(dir $(p)))[test]')
	touch $@

run: setup
	@image=$$($(BIN)/fata build appliances/dns | tail -n 1) && \
	  echo "built $$image" && \
	  echo "DNS appliance answering on 127.0.0.1:$(DNS_PORT) (UDP and TCP); try:" && \
	  echo "  dig @127.0.0.1 -p $(DNS_PORT) www.example.org A" && \
	  echo "Ctrl-C stops it." && \
	  exec $(BIN)/fata run $$image -- --listen 127.0.0.1 --port $(DNS_PORT)

# The www appliance over HTTP, HTTPS and HTTP/2, with the development certificate.
run-www: setup
	@image=$$($(BIN)/fata build appliances/www | tail -n 1) && \
	  ca=$${XDG_STATE_HOME:-$$HOME/.local/state}/fata/www-devcert/ca.pem && \
	  echo "built $$image" && \
	  echo "www appliance on http://127.0.0.1:$(WWW_PORT)/ and https://localhost:$(WWW_TLS_PORT)/; try:" && \
	  echo "  curl http://127.0.0.1:$(WWW_PORT)/" && \
	  echo "  curl --http2 --cacert $$ca https://localhost:$(WWW_TLS_PORT)/" && \
	  echo "(the development certificate is signed by that CA, made for your user at build time)" && \
	  echo "Ctrl-C stops it." && \
	  exec $(BIN)/fata run $$image -- --listen 127.0.0.1 --port $(WWW_PORT) --tls \
	    --tls-port $(WWW_TLS_PORT)

tools:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(DEBIAN_TOOLS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian tools for the tests: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else echo "not root: tests needing Debian tools or root will be skipped with a reason"; fi
	@if [ ! -x $(XEN_UTILS)/usr/lib/xen-4.17/bin/test-xenstore ] && command -v apt-get >/dev/null; then \
	  echo "unpacking xen-utils-4.17 (Xen's test-xenstore, a peer of the xenstore tests) into $(XEN_UTILS)"; \
	  mkdir -p $(XEN_UTILS) && cd $(XEN_UTILS) && \
	  { apt-get download xen-utils-4.17 >/dev/null 2>&1 && dpkg -x xen-utils-4.17_*.deb . && \
	    rm -f xen-utils-4.17_*.deb; } || echo "could not fetch xen-utils-4.17: its tests will be skipped"; \
	fi

test: setup tools
	$(BIN)/ruff check $(wildcard core appliances tests)
	$(BIN)/pytest

images: setup
	$(BIN)/python -m fata.image.recipes

clean:
	rm -rf $(VENV) images/dist bench-results
