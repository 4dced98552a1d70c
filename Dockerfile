# The cri-enricherd container image: the static binary that `make build`
# produced (CGO_ENABLED=0, so it needs no libc), alone on an empty base.
# Build it with `make image`; `make image-check` builds it and runs it.
#
# BASE_IMAGE defaults to scratch so that no registry is named here; set it
# (--build-arg BASE_IMAGE=...) to a minimal image from your own registry if
# you want a shell or CA certificates in the image, which the daemon does
# not need.
ARG BASE_IMAGE=scratch
FROM ${BASE_IMAGE}

ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/cri-enricherd/cri-enricherd
# SPDX expression; NOASSERTION until the project states a license.
ARG LICENSES=NOASSERTION

LABEL org.opencontainers.image.title="cri-enricherd" \
      org.opencontainers.image.description="Node daemon mapping cgroups, PIDs and container IDs to enriched container and pod records through the CRI" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="${LICENSES}"

COPY bin/cri-enricherd /cri-enricherd

# Root by default: the daemon must open the runtime's root-owned CRI socket.
# The Helm chart drops every capability and forbids privilege escalation;
# see deploy/README.md for running it as another user.
USER 0:0
ENTRYPOINT ["/cri-enricherd"]
