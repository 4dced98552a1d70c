package harness

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"time"
)

// Image names the harness imports. They use a neutral registry name: no
// registry is reachable, and nothing ever pulls them.
const (
	// WorkloadImage runs every container RunPod creates. Its default
	// command sleeps forever; any busybox applet can be given as Command.
	WorkloadImage = "cri-enricherd.test/busybox:1"
	// PauseImage is the sandbox image named in the containerd config.
	PauseImage = "cri-enricherd.test/pause:1"
)

const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	// annotationImageName is the name containerd's importer gives an image.
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
	sleepForever        = "2147483647"
)

// busyboxApplets are linked to /bin/busybox in the image layer.
func busyboxApplets() []string {
	return []string{
		"sh", "sleep", "cat", "echo", "ls", "ps", "true", "false", "env", "id",
		"hostname", "mkdir", "rm", "touch", "head", "tail", "grep", "kill",
		"date", "printf", "test", "uname", "wc", "yes", "ip", "ln", "mount",
	}
}

// imageSpec is one image of the archive.
type imageSpec struct {
	name       string
	entrypoint []string
	cmd        []string
}

// harnessImages returns the workload and pause images.
func harnessImages() []imageSpec {
	return []imageSpec{
		{name: WorkloadImage, cmd: []string{"sleep", sleepForever}},
		{name: PauseImage, entrypoint: []string{"/bin/sleep", sleepForever}},
	}
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// blob is content addressed by its sha256 digest.
type blob struct {
	data []byte
	hex  string
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{data: data, hex: hex.EncodeToString(sum[:])}
}

func (b blob) descriptor(mediaType string) descriptor {
	return descriptor{MediaType: mediaType, Digest: "sha256:" + b.hex, Size: int64(len(b.data))}
}

// writeImageArchive writes an OCI image layout tar holding every image in
// specs, all sharing one busybox layer. Timestamps are fixed so the digests
// only change when the busybox binary does.
func writeImageArchive(path, busybox string, specs []imageSpec) error {
	layerTar, err := buildLayer(busybox)
	if err != nil {
		return err
	}
	layer, err := gzipBlob(layerTar)
	if err != nil {
		return err
	}
	diffID := "sha256:" + newBlob(layerTar).hex
	blobs := []blob{layer}
	var manifests []descriptor
	for _, spec := range specs {
		desc, imageBlobs, err := buildImage(spec, layer, diffID)
		if err != nil {
			return err
		}
		manifests = append(manifests, desc)
		blobs = append(blobs, imageBlobs...)
	}
	return writeLayout(path, manifests, blobs)
}

// buildImage returns the manifest descriptor and the config and manifest
// blobs of one image.
func buildImage(spec imageSpec, layer blob, diffID string) (descriptor, []blob, error) {
	config, err := json.Marshal(map[string]any{
		"created":      time.Unix(0, 0).UTC(),
		"architecture": goruntime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"Env":        []string{"PATH=/bin"},
			"Entrypoint": spec.entrypoint,
			"Cmd":        spec.cmd,
			"WorkingDir": "/",
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history": []map[string]string{{"created_by": "cri-enricherd test harness"}},
	})
	if err != nil {
		return descriptor{}, nil, fmt.Errorf("marshal image config %s: %w", spec.name, err)
	}
	configBlob := newBlob(config)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeManifest,
		"config":        configBlob.descriptor(mediaTypeConfig),
		"layers":        []descriptor{layer.descriptor(mediaTypeLayer)},
	})
	if err != nil {
		return descriptor{}, nil, fmt.Errorf("marshal image manifest %s: %w", spec.name, err)
	}
	manifestBlob := newBlob(manifest)
	desc := manifestBlob.descriptor(mediaTypeManifest)
	desc.Platform = &platform{Architecture: goruntime.GOARCH, OS: "linux"}
	desc.Annotations = map[string]string{
		annotationImageName: spec.name,
		annotationRefName:   spec.name[strings.LastIndex(spec.name, ":")+1:],
	}
	return desc, []blob{configBlob, manifestBlob}, nil
}

// buildLayer returns an uncompressed layer tar: a minimal root filesystem
// with /bin/busybox and its applet links.
func buildLayer(busybox string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := writeRootDirs(tw); err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
		mode int64
	}{
		{"bin/busybox", bin, 0o755},
		{"etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644},
		{"etc/group", []byte("root:x:0:\n"), 0o644},
	}
	for _, f := range files {
		if err := writeTarFile(tw, f.name, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	for _, applet := range busyboxApplets() {
		hdr := tarHeader(tar.TypeSymlink, "bin/"+applet, 0o777, 0)
		hdr.Linkname = "busybox"
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write layer link %s: %w", applet, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

func writeRootDirs(tw *tar.Writer) error {
	for _, dir := range []string{"bin/", "dev/", "etc/", "proc/", "root/", "sys/", "tmp/", "var/"} {
		mode := int64(0o755)
		if dir == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(tarHeader(tar.TypeDir, dir, mode, 0)); err != nil {
			return fmt.Errorf("write layer dir %s: %w", dir, err)
		}
	}
	return nil
}

func tarHeader(typ byte, name string, mode, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ, Name: name, Mode: mode, Size: size,
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
	}
}

func writeTarFile(tw *tar.Writer, name string, data []byte, mode int64) error {
	if err := tw.WriteHeader(tarHeader(tar.TypeReg, name, mode, int64(len(data)))); err != nil {
		return fmt.Errorf("write tar header %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("write tar file %s: %w", name, err)
	}
	return nil
}

func gzipBlob(data []byte) (blob, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		return blob{}, fmt.Errorf("gzip layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return blob{}, fmt.Errorf("gzip layer: %w", err)
	}
	return newBlob(buf.Bytes()), nil
}

// writeLayout writes the OCI layout tar: oci-layout, index.json and blobs.
func writeLayout(path string, manifests []descriptor, blobs []blob) error {
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaTypeIndex, "manifests": manifests})
	if err != nil {
		return fmt.Errorf("marshal image index: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(tarHeader(tar.TypeDir, dir, 0o755, 0)); err != nil {
			return fmt.Errorf("write layout dir: %w", err)
		}
	}
	if err := writeTarFile(tw, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	if err := writeTarFile(tw, "index.json", index, 0o644); err != nil {
		return err
	}
	for _, b := range blobs {
		if err := writeTarFile(tw, "blobs/sha256/"+b.hex, b.data, 0o644); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close image archive: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write image archive: %w", err)
	}
	return nil
}

// importImages loads the archive into the CRI's k8s.io namespace with ctr.
// ctr from containerd 1.6 also works against 2.x: the content, image and
// snapshot APIs it uses did not change.
func importImages(ctx context.Context, ctr, socket, archive string) error {
	cmd := exec.CommandContext(ctx, ctr, "--address", socket, "--namespace", "k8s.io", "images", "import", archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// tagImage names the image src also dst in the CRI's k8s.io namespace.
func tagImage(ctx context.Context, ctr, socket, src, dst string) error {
	cmd := exec.CommandContext(ctx, ctr, "--address", socket, "--namespace", "k8s.io", "images", "tag", "--force", src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images tag %s %s: %w: %s", src, dst, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ImageDigest returns the digest of the manifest the imported image name
// points at (what a pod pinning the image by digest asks for).
func (r *Runtime) ImageDigest(ctx context.Context, name string) (string, error) {
	out, err := exec.CommandContext(ctx, r.opts.Ctr, "--address", r.layout.socket, "--namespace", "k8s.io",
		"images", "ls", "name=="+name).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ctr images ls %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 3 && fields[0] == name && strings.HasPrefix(fields[2], "sha256:") {
			return fields[2], nil
		}
	}
	return "", fmt.Errorf("image %s not listed by ctr: %s", name, strings.TrimSpace(string(out)))
}

// ImportImage imports an OCI image archive (hack/image-archive.sh writes
// one) into the runtime's k8s.io namespace and waits until the CRI knows
// the image by name.
func (r *Runtime) ImportImage(ctx context.Context, archive, name string) error {
	if err := importImages(ctx, r.opts.Ctr, r.layout.socket, archive); err != nil {
		return err
	}
	return r.waitImage(ctx, name)
}
