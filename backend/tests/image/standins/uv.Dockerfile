# Stand-in for ghcr.io/astral-sh/uv:<version>: the same two binaries at the same paths
# (/uv, /uvx), taken from the uv wheel of that version on PyPI.
FROM scratch
COPY uv uvx /
ENTRYPOINT ["/uv"]
