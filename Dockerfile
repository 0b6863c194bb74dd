# The schemagate operator image. Two stages on one base: the virtual environment is
# built in the first and copied whole into the second, whose Python it links to.
# tests/image/test_install.py runs the build stage's steps in a clean virtual
# environment and checks the final stage, since no image can be built on our machines.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Only what the package needs: a change to the tests or the chart rebuilds nothing.
COPY pyproject.toml constraints.txt README.md ./
COPY operator/ operator/
# The same pins as `make test`, without the test extras; every dependency installs
# from a wheel, so this stage needs no compiler either.
RUN python -m venv /opt/schemagate \
 && /opt/schemagate/bin/pip install -c constraints.txt . \
 && /opt/schemagate/bin/pip uninstall --yes pip \
 && /opt/schemagate/bin/schemagate --help >/dev/null \
 && /opt/schemagate/bin/schemagate crd >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="schemagate" \
      org.opencontainers.image.description="Hold a backend's pods NotReady until its database schema is really there." \
      org.opencontainers.image.licenses="Apache-2.0"
# Bytecode was compiled at install: the root filesystem is read-only at run time.
ENV PATH=/opt/schemagate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/schemagate /opt/schemagate
# A numeric UID, so the kubelet can check runAsNonRoot; the chart runs as the same one.
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["schemagate", "run"]
