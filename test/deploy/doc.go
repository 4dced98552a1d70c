// Package deploy checks what ships the daemon to a cluster: the Helm chart
// under deploy/helm/cri-enricherd, the plain manifests rendered from it, and
// the alerting rules. `make deploy-check` runs it.
//
// The tests render the chart with a real helm binary (CRI_ENRICHERD_HELM,
// else helm on PATH or in GOPATH/bin), decode every object strictly into its
// Kubernetes API type, load the rendered config file with the daemon's own
// loader, and run promtool (CRI_ENRICHERD_PROMTOOL, else on PATH) over the
// rules. A missing tool skips the tests, unless CRI_ENRICHERD_DEPLOY_CHECK=1
// (set by `make deploy-check`) makes it a failure, so CI cannot pass by
// skipping.
package deploy
