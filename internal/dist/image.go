package dist

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's non-root user, the same uid as the source Dockerfile's.
const (
	ImageUID     = 10001
	ImageUser    = "10001:10001"
	ImageDataDir = "/var/lib/isobox"
	ImageBinDir  = "/usr/local/bin"
)

// ImageRef is a service's image name and tag: isobox/<service>:<version>.
func ImageRef(service, version string) string { return "isobox/" + service + ":" + version }

// ImageFile is where Image writes a service's image tarball, relative to Out.
func ImageFile(service, version, arch string) string {
	return filepath.Join("images", PackageName(service)+"_"+version+"_linux_"+arch+".tar")
}

// imagePorts are the ports each service listens on by default.
func imagePorts(service string) []string {
	if service == "authprovider" {
		return []string{"8080/tcp", "8081/tcp", "9090/tcp"}
	}
	return []string{"8090/tcp", "8091/tcp", "8895/tcp", "9091/tcp"}
}

// Image writes a `docker load`-able tarball of service's image for arch
// and returns its path. No Docker daemon and no base image: two layers made
// here, a minimal root (passwd/group with the non-root user, the CA
// certificates directory, /tmp, the data directory) and the static binary.
func Image(o Options, service, arch string) (string, error) {
	mtime := o.Date.UTC()
	base, err := layer(mtime, []tarEntry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, body: "root:x:0:0:root:/root:/sbin/nologin\n" +
			fmt.Sprintf("isobox:x:%d:%d:isobox:%s:/sbin/nologin\n", ImageUID, ImageUID, ImageDataDir)},
		{name: "etc/group", mode: 0o644, body: fmt.Sprintf("root:x:0:\nisobox:x:%d:\n", ImageUID)},
		{name: "etc/nsswitch.conf", mode: 0o644, body: "hosts: files dns\n"},
		// Mount the organisation's CA certificates here (Go reads /etc/ssl/certs).
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "var/", mode: 0o755, dir: true},
		{name: "var/lib/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(ImageDataDir, "/") + "/", mode: 0o700, dir: true, uid: ImageUID},
	})
	if err != nil {
		return "", err
	}
	bin, err := os.ReadFile(BinaryPath(o.Out, arch, service))
	if err != nil {
		return "", err
	}
	binLayer, err := layer(mtime, []tarEntry{
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(ImageBinDir, "/") + "/" + service, mode: 0o755, body: string(bin)},
	})
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), base, binLayer)
	if err != nil {
		return "", err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: mtime}
	ports := map[string]struct{}{}
	for _, p := range imagePorts(service) {
		ports[p] = struct{}{}
	}
	cf.Config = v1.Config{
		Entrypoint:   []string{ImageBinDir + "/" + service},
		User:         ImageUser,
		WorkingDir:   ImageDataDir,
		Env:          []string{strings.ToUpper(service) + "_DATA_DIR=" + ImageDataDir},
		ExposedPorts: ports,
		Volumes:      map[string]struct{}{ImageDataDir: {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":    "isobox " + service,
			"org.opencontainers.image.version":  o.Version,
			"org.opencontainers.image.revision": o.Commit,
			"org.opencontainers.image.created":  mtime.Format(time.RFC3339),
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return "", err
	}
	tag, err := name.NewTag(ImageRef(service, o.Version))
	if err != nil {
		return "", err
	}
	out := filepath.Join(o.Out, ImageFile(service, o.Version, arch))
	if err := mkdirFor(out); err != nil {
		return "", err
	}
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return "", fmt.Errorf("write image %s: %w", out, err)
	}
	return out, nil
}

// tarEntry is one file or directory of a layer.
type tarEntry struct {
	name string
	mode int64
	dir  bool
	uid  int
	body string
}

// layer makes an OCI layer holding entries, all stamped with mtime.
func layer(mtime time.Time, entries []tarEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime, Uid: e.uid, Gid: e.uid, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// ImageSummary is what CheckImage found in an image tarball.
type ImageSummary struct {
	Entrypoint []string
	User       string
	Arch       string
	Files      map[string]string // path in the image → hex SHA-256 of its content ("" for a directory)
}

// ReadImage reads an image tarball the way `docker load` does (its
// manifest.json, config and layers) and lists what it holds.
func ReadImage(path, ref string) (*ImageSummary, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return nil, err
	}
	img, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		return nil, fmt.Errorf("read image %s (%s): %w", path, ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	s := &ImageSummary{Entrypoint: cf.Config.Entrypoint, User: cf.Config.User, Arch: cf.Architecture, Files: map[string]string{}}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return nil, fmt.Errorf("read layer of %s: %w", path, err)
			}
			sum := ""
			if h.Typeflag == tar.TypeReg {
				if sum, err = sha256Reader(tr); err != nil {
					rc.Close()
					return nil, fmt.Errorf("read layer of %s: %w", path, err)
				}
			}
			s.Files["/"+strings.TrimSuffix(h.Name, "/")] = sum
		}
		rc.Close()
	}
	return s, nil
}

// CheckImage reports an error unless the tarball at path loads as
// isobox/<service>:<version> for arch, runs the service's binary as the
// non-root user and carries that very binary.
func CheckImage(path, service, version, arch, binary string) error {
	s, err := ReadImage(path, ImageRef(service, version))
	if err != nil {
		return err
	}
	want := ImageBinDir + "/" + service
	if len(s.Entrypoint) != 1 || s.Entrypoint[0] != want {
		return fmt.Errorf("image %s: entrypoint %q, want [%s]", path, s.Entrypoint, want)
	}
	if s.User != ImageUser {
		return fmt.Errorf("image %s: user %q, want %s", path, s.User, ImageUser)
	}
	if s.Arch != arch {
		return fmt.Errorf("image %s: architecture %q, want %s", path, s.Arch, arch)
	}
	sum, err := sha256File(binary)
	if err != nil {
		return err
	}
	if got, ok := s.Files[want]; !ok || got != sum {
		return fmt.Errorf("image %s: %s has SHA-256 %q (present %v), want %s's %s", path, want, got, ok, binary, sum)
	}
	for _, f := range []string{"/etc/passwd", "/etc/group", "/etc/ssl/certs", ImageDataDir} {
		if _, ok := s.Files[f]; !ok {
			return fmt.Errorf("image %s: no %s", path, f)
		}
	}
	return nil
}
