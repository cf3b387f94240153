# Stand-in for python:3.11-slim-bookworm: Debian bookworm (debootstrap) with Debian's
# Python 3.11. The official image keeps its interpreter at /usr/local/bin/python3 and
# /usr/local/bin/python; the same names point at Debian's here, so whatever the project's
# Dockerfile or a virtualenv resolves finds a Python at the official image's paths.
ARG BASE
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python3.11 \
    && ln -s python3.11 /usr/local/bin/python3 \
    && ln -s python3.11 /usr/local/bin/python
CMD ["python3"]
