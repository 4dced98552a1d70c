package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

// ErrUnreachable wraps every failure to connect to the daemon's socket.
var ErrUnreachable = errors.New("daemon unreachable")

// APIError is an answer with an error status.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// maxLine bounds one record or event of a watch stream.
const maxLine = 16 << 20

// Client talks to one daemon. The zero value is not usable: call New.
type Client struct {
	http *http.Client
}

// New returns a client of the API served on the unix socket at socket.
// Every request is also bounded by its context.
func New(socket string) *Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		},
		ResponseHeaderTimeout: 30 * time.Second,
	}}}
}

// Container returns the record with this ID or unique ID prefix.
func (c *Client) Container(ctx context.Context, id string) (enrich.Record, error) {
	var rec enrich.Record
	return rec, c.get(ctx, "/v1/containers/"+url.PathEscape(id), nil, &rec)
}

// ContainerByPID returns the record of the container process pid lives in.
func (c *Client) ContainerByPID(ctx context.Context, pid int) (enrich.Record, error) {
	var rec enrich.Record
	return rec, c.get(ctx, "/v1/pids/"+strconv.Itoa(pid), nil, &rec)
}

// ContainerByCgroup returns the record of the container a cgroup path
// belongs to.
func (c *Client) ContainerByCgroup(ctx context.Context, path string) (enrich.Record, error) {
	var rec enrich.Record
	return rec, c.get(ctx, "/v1/cgroups", url.Values{"path": {path}}, &rec)
}

// ContainerByCgroupID returns the record whose cgroup has this cgroup v2 ID.
func (c *Client) ContainerByCgroupID(ctx context.Context, id uint64) (enrich.Record, error) {
	var rec enrich.Record
	return rec, c.get(ctx, "/v1/cgroup-ids/"+strconv.FormatUint(id, 10), nil, &rec)
}

// PodByIP returns the live pod that holds ip now.
func (c *Client) PodByIP(ctx context.Context, ip string) (query.PodRecords, error) {
	var pod query.PodRecords
	err := c.get(ctx, "/v1/ips/"+url.PathEscape(ip), nil, &pod)
	return pod, err
}

// Containers lists the records o selects.
func (c *Client) Containers(ctx context.Context, o query.ListOptions) ([]enrich.Record, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("namespace", o.Namespace)
	set("pod", o.PodName)
	set("pod_uid", o.PodUID)
	set("sandbox", o.SandboxID)
	set("selector", o.Selector)
	if o.IncludeDeleted {
		q.Set("include_deleted", "true")
	}
	if o.ExcludeSandboxes {
		q.Set("sandboxes", "false")
	}
	var out struct {
		Items []enrich.Record `json:"items"`
	}
	return out.Items, c.get(ctx, "/v1/containers", q, &out)
}

// Watch streams events to fn, starting after revision resume (0: with the
// current state), until ctx ends, fn returns an error, or the daemon ends
// the stream. It returns fn's error, an *APIError, or an error wrapping
// ErrUnreachable.
func (c *Client) Watch(ctx context.Context, resume uint64, fn func(watch.Event) error) error {
	q := url.Values{}
	if resume != 0 {
		q.Set("revision", strconv.FormatUint(resume, 10))
	}
	resp, err := c.do(ctx, "/v1/watch", q)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, maxLine)
	for sc.Scan() {
		var line struct {
			watch.Event
			Error  string `json:"error"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("watch: decoding event: %w", err)
		}
		if line.Error != "" {
			return &APIError{Status: line.Status, Message: line.Error}
		}
		if err := fn(line.Event); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("watch: %w", err)
	}
	return ctx.Err()
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	resp, err := c.do(ctx, path, q)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding answer of %s: %w", path, err)
	}
	return nil
}

// do sends a GET and returns a response with status 200, or an error.
func (c *Client) do(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := "http://cri-enricherd" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("%w: %w", ErrUnreachable, op)
		}
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Error string `json:"error"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(data, &body) != nil || body.Error == "" {
		body.Error = fmt.Sprintf("%s: %s", resp.Status, data)
	}
	return nil, &APIError{Status: resp.StatusCode, Message: body.Error}
}
