package cgroup

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// watchMask is what the watcher asks of every directory: children coming
// and going, and the directory itself going away.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_DELETE_SELF |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ONLYDIR

// readBufferSize holds hundreds of events; one event is at most
// SizeofInotifyEvent+NAME_MAX+1 bytes.
const readBufferSize = 64 << 10

// inotifyEvent is one decoded inotify event.
type inotifyEvent struct {
	wd   int
	mask uint32
	name string
}

// knownCgroup is a reported container cgroup.
type knownCgroup struct {
	ref Ref
	id  uint64
}

// session is one Run of a Watcher: the inotify instance, the two-way map
// between watch descriptors and the directories they watch, and the
// containers reported. Only Run's goroutine touches it, so it needs no
// lock; the reader goroutine only reads the file.
type session struct {
	w         *Watcher
	fd        int
	file      *os.File
	emit      func(Event)
	dirs      map[string]int         // relative path -> watch descriptor
	paths     map[int]string         // watch descriptor -> relative path
	known     map[string]knownCgroup // container-level path -> what was reported
	unwatched int                    // directories whose watch failed since the last summary
}

// open creates a non-blocking inotify instance. Wrapping it in an os.File
// puts it in the runtime poller, so closing the file wakes a blocked Read.
func (w *Watcher) open(emit func(Event)) (*session, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify init: %w", err)
	}
	return &session{
		w:     w,
		fd:    fd,
		file:  os.NewFile(uintptr(fd), "inotify"),
		emit:  emit,
		dirs:  make(map[string]int),
		paths: make(map[int]string),
		known: make(map[string]knownCgroup),
	}, nil
}

// close releases the inotify instance; closing twice is harmless.
func (s *session) close() {
	_ = s.file.Close()
}

// walk watches and reports the whole tree for the first time.
func (s *session) walk() error {
	if err := s.watch("/"); err != nil {
		return fmt.Errorf("watch cgroup directory %s: %w", s.w.dir, err)
	}
	s.scan("/", nil)
	s.summarize()
	return nil
}

// follow handles inotify events and rescans until ctx is done, then stops
// the reader goroutine and waits for it.
func (s *session) follow(ctx context.Context) error {
	ticker := s.w.clock.NewTicker(s.w.interval)
	defer ticker.Stop()
	batches := make(chan []inotifyEvent)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { readErr <- s.read(batches, done) })
	err := s.loop(ctx, ticker.C(), batches, readErr)
	close(done)
	s.close() // wakes the reader if it is blocked in Read
	wg.Wait()
	return err
}

func (s *session) loop(ctx context.Context, tick <-chan time.Time, batches <-chan []inotifyEvent, readErr <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return err
		case <-tick:
			s.rescan()
		case events := <-batches:
			for _, ev := range events {
				if err := s.handle(ev); err != nil {
					return err
				}
			}
		}
	}
}

// read decodes inotify events and hands them to the loop until the file is
// closed or done is closed.
func (s *session) read(out chan<- []inotifyEvent, done <-chan struct{}) error {
	buf := make([]byte, readBufferSize)
	for {
		n, err := s.file.Read(buf)
		if errors.Is(err, os.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read inotify events: %w", err)
		}
		events, err := decodeEvents(buf[:n])
		if err != nil {
			return err
		}
		select {
		case out <- events:
		case <-done:
			return nil
		}
	}
}

// decodeEvents splits a buffer read from inotify into events.
func decodeEvents(buf []byte) ([]inotifyEvent, error) {
	var events []inotifyEvent
	for len(buf) > 0 {
		if len(buf) < unix.SizeofInotifyEvent {
			return nil, fmt.Errorf("decode inotify events: %d trailing bytes", len(buf))
		}
		end := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[12:16]))
		if end > len(buf) {
			return nil, fmt.Errorf("decode inotify events: name runs past the buffer by %d bytes", end-len(buf))
		}
		name := buf[unix.SizeofInotifyEvent:end]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		events = append(events, inotifyEvent{
			wd:   int(int32(binary.NativeEndian.Uint32(buf[0:4]))),
			mask: binary.NativeEndian.Uint32(buf[4:8]),
			name: string(name),
		})
		buf = buf[end:]
	}
	return events, nil
}

// handle applies one inotify event. A directory that appears is scanned
// right after its watch is added, which catches children created before the
// watch existed.
func (s *session) handle(ev inotifyEvent) error {
	switch {
	case ev.mask&unix.IN_Q_OVERFLOW != 0:
		s.w.log.Warn("inotify queue overflowed, rescanning cgroups")
		s.rescan()
	case ev.mask&unix.IN_IGNORED != 0:
		s.forgetWatch(ev.wd)
	case ev.mask&unix.IN_DELETE_SELF != 0:
		return s.removedSelf(ev.wd)
	case ev.mask&unix.IN_ISDIR == 0:
		// cgroup files are not containers
	case ev.mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		if rel, ok := s.child(ev); ok {
			s.scan(rel, nil)
		}
	case ev.mask&(unix.IN_DELETE|unix.IN_MOVED_FROM) != 0:
		if rel, ok := s.child(ev); ok {
			s.removeTree(rel, ev.mask&unix.IN_MOVED_FROM != 0)
		}
	}
	return nil
}

// child is the relative path an event's name denotes in its watched parent.
func (s *session) child(ev inotifyEvent) (string, bool) {
	parent, ok := s.paths[ev.wd]
	if !ok || ev.name == "" {
		return "", false
	}
	return joinRel(parent, ev.name), true
}

// removedSelf handles a watched directory being removed. Losing the root
// ends the watch: there is nothing left to follow.
func (s *session) removedSelf(wd int) error {
	rel, ok := s.paths[wd]
	if !ok {
		return nil
	}
	if rel == "/" {
		return fmt.Errorf("watched cgroup directory %s was removed", s.w.dir)
	}
	s.removeTree(rel, false)
	return nil
}

// scan watches rel, reports it if it is a container cgroup, and descends.
// seen, when not nil, collects every directory found (for a rescan's diff).
func (s *session) scan(rel string, seen map[string]bool) {
	if err := s.watch(rel); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return // gone already; its removal event follows or was handled
		}
		s.unwatched++
		s.w.log.Debug("cannot watch cgroup directory", zap.String("path", rel), zap.Error(err))
	}
	if seen != nil {
		seen[rel] = true
	}
	s.report(rel)
	entries, err := os.ReadDir(s.abs(rel))
	if err != nil {
		s.w.log.Debug("cannot list cgroup directory", zap.String("path", rel), zap.Error(err))
		return
	}
	for _, e := range entries {
		if e.IsDir() {
			s.scan(joinRel(rel, e.Name()), seen)
		}
	}
}

// watch adds (or refreshes) the watch of rel and records its descriptor.
func (s *session) watch(rel string) error {
	wd, err := s.w.addWatch(s.fd, s.abs(rel), watchMask)
	if err != nil {
		return err
	}
	if old, ok := s.dirs[rel]; ok && old != wd {
		delete(s.paths, old)
	}
	if old, ok := s.paths[wd]; ok && old != rel {
		delete(s.dirs, old) // the directory was renamed without our seeing it
	}
	s.dirs[rel] = wd
	s.paths[wd] = rel
	return nil
}

// report emits Added for rel if it is a container's own cgroup not reported
// before.
func (s *session) report(rel string) {
	cpath, ref, ok := ContainerPath(rel)
	if _, reported := s.known[rel]; !ok || cpath != rel || reported {
		return
	}
	k := knownCgroup{ref: ref, id: s.cgroupID(rel)}
	s.known[rel] = k
	s.send(Event{Kind: Added, Path: rel, Ref: ref, CgroupID: k.id})
}

// cgroupID is the inode of rel's directory on a v2 tree: the number the
// kernel hands eBPF programs as the cgroup's ID. 0 on v1, or when the
// directory is already gone (its Removed follows).
func (s *session) cgroupID(rel string) uint64 {
	if !s.w.ids {
		return 0
	}
	var st unix.Stat_t
	if err := unix.Stat(s.abs(rel), &st); err != nil {
		return 0
	}
	return st.Ino
}

// removeTree forgets rel and everything below it and emits Removed for the
// containers among them. unwatch drops the kernel watches too, for a tree
// moved away (a removed tree loses its watches by itself).
func (s *session) removeTree(rel string, unwatch bool) {
	inTree := func(p string) bool { return p == rel || strings.HasPrefix(p, rel+"/") }
	for p, wd := range s.dirs {
		if inTree(p) {
			s.dropWatch(p, wd, unwatch)
		}
	}
	for _, ev := range s.forgetKnown(inTree) {
		s.send(ev)
	}
}

// rescan walks the whole tree again, emitting what inotify missed: Added for
// new containers, Removed for known ones that are gone.
func (s *session) rescan() {
	seen := make(map[string]bool, len(s.dirs))
	s.scan("/", seen)
	for p, wd := range s.dirs {
		if !seen[p] {
			s.dropWatch(p, wd, true)
		}
	}
	for _, ev := range s.forgetKnown(func(p string) bool { return !seen[p] }) {
		s.send(ev)
	}
	s.summarize()
}

// forgetKnown drops the known containers whose path matches and returns them
// as Removed events, sorted by path.
func (s *session) forgetKnown(match func(path string) bool) []Event {
	var events []Event
	for path, k := range s.known {
		if match(path) {
			delete(s.known, path)
			events = append(events, Event{Kind: Removed, Path: path, Ref: k.ref, CgroupID: k.id})
		}
	}
	slices.SortFunc(events, func(a, b Event) int { return cmp.Compare(a.Path, b.Path) })
	return events
}

// dropWatch forgets the watch of rel, and removes it from the kernel when
// unwatch is set (EINVAL then means the kernel already dropped it).
func (s *session) dropWatch(rel string, wd int, unwatch bool) {
	delete(s.dirs, rel)
	delete(s.paths, wd)
	if unwatch {
		_, _ = unix.InotifyRmWatch(s.fd, uint32(wd))
	}
}

// forgetWatch handles IN_IGNORED: the kernel dropped the watch wd.
func (s *session) forgetWatch(wd int) {
	rel, ok := s.paths[wd]
	if !ok {
		return
	}
	delete(s.paths, wd)
	if s.dirs[rel] == wd {
		delete(s.dirs, rel)
	}
}

// summarize logs once how many directories could not be watched since the
// last summary; their changes are seen only by rescans.
func (s *session) summarize() {
	if s.unwatched > 0 {
		s.w.log.Warn("some cgroup directories are not watched, relying on rescans",
			zap.Int("directories", s.unwatched))
		s.unwatched = 0
	}
}

func (s *session) send(ev Event) {
	s.w.log.Debug("container cgroup "+ev.Kind.String(),
		zap.String("path", ev.Path), zap.String("container_id", ev.Ref.ContainerID))
	s.emit(ev)
}

// abs is the filesystem path of a path relative to the watched directory.
func (s *session) abs(rel string) string {
	return filepath.Join(s.w.dir, rel)
}

// joinRel joins a relative cgroup path and a child name.
func joinRel(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}
