// Package daemonproc runs the cri-enricherd binary for the end-to-end tests,
// the demo and the benchmark programs, and talks to it as a node's
// consumers do: the HTTP API on its unix socket, the probes, /metrics and
// pprof on its loopback metrics address.
package daemonproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/cri-enricherd/cri-enricherd/internal/promtext"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// Client talks to a running daemon, whether Start ran it or not (such as
// the chart's pod under a real kubelet).
type Client struct {
	Socket      string       // the HTTP API's unix socket
	MetricsAddr string       // host:port of the probes, /metrics and pprof
	API         *http.Client // HTTP over Socket; any host name reaches it
	metrics     *http.Client
}

// NewClient returns a client of the daemon serving its API on socket and
// its metrics on metricsAddr.
func NewClient(socket, metricsAddr string) *Client {
	return &Client{
		Socket: socket, MetricsAddr: metricsAddr,
		API: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 64, // the benchmarks poll from many goroutines
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", socket)
			},
		}},
		metrics: &http.Client{Timeout: 30 * time.Second},
	}
}

// Get fetches an API path and decodes a 200 answer's JSON into out (nil
// discards it). Any other status is an error carrying the answer's body.
func (c *Client) Get(path string, out any) (int, error) {
	resp, err := c.API.Get("http://cri-enricherd" + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s = %d: %s", path, resp.StatusCode, body)
	}
	if out == nil {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.Unmarshal(body, out)
}

// Record returns the daemon's record of a container or sandbox ID (or
// prefix).
func (c *Client) Record(id string) (enrich.Record, error) {
	var rec enrich.Record
	_, err := c.Get("/v1/containers/"+id, &rec)
	return rec, err
}

// Records returns every record the daemon lists.
func (c *Client) Records() ([]enrich.Record, error) {
	var list struct {
		Items []enrich.Record `json:"items"`
	}
	_, err := c.Get("/v1/containers", &list)
	return list.Items, err
}

// Probe returns the status of a GET on the metrics address (such as
// /readyz), or 0 when it does not answer.
func (c *Client) Probe(path string) int {
	resp, err := c.metrics.Get("http://" + c.MetricsAddr + path)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Fetch returns the body of a 200 answer to a GET on the metrics address.
func (c *Client) Fetch(path string) ([]byte, error) {
	resp, err := c.metrics.Get("http://" + c.MetricsAddr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// Scrape returns the samples of /metrics and the page they were read from.
func (c *Client) Scrape() (promtext.Samples, []byte, error) {
	page, err := c.Fetch("/metrics")
	if err != nil {
		return nil, nil, err
	}
	samples, err := promtext.Parse(bytes.NewReader(page))
	return samples, page, err
}
