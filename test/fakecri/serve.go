package fakecri

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Serve serves the runtime on a new unix socket at socketPath until stop is
// called. stop cancels the RPCs in flight (their clients see Unavailable,
// as when a runtime dies), waits for every handler to return and removes
// the socket; it may be called more than once.
func (r *Runtime) Serve(socketPath string) (stop func(), err error) {
	l, err := net.Listen("unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("fakecri listen: %w", err)
	}
	srv := grpc.NewServer(grpc.WaitForHandlers(true))
	runtimeapi.RegisterRuntimeServiceServer(srv, &server{r: r})
	srv.RegisterService(&containerdEventsDesc, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l) // returns when stopped
	}()
	return sync.OnceFunc(func() {
		srv.Stop()
		<-done
	}), nil
}

// Start serves the runtime for the rest of the test and returns its
// endpoint ("unix:///..."). The socket lives in a short temp dir, since a
// unix socket path must stay under 108 bytes and test names are long.
func (r *Runtime) Start(t testing.TB) string {
	t.Helper()
	sock := socketPath(t)
	stop, err := r.Serve(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return "unix://" + sock
}

func socketPath(t testing.TB) string {
	dir, err := os.MkdirTemp("", "fakecri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "cri.sock")
}

// Silent serves, for the rest of the test, a unix socket that accepts
// connections, reads and discards whatever the client sends and never
// answers: the hung runtime no timeout may be forgotten against. It
// returns the endpoint ("unix:///...").
func Silent(t testing.TB) string {
	t.Helper()
	sock := socketPath(t)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			mu.Lock()
			if closed { // accepted just before the cleanup closed the rest
				_ = conn.Close()
			}
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		err := l.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("close silent socket: %v", err)
		}
	})
	return "unix://" + sock
}
