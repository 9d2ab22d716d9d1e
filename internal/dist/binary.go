package dist

import (
	"debug/buildinfo"
	"debug/elf"
	"fmt"
)

// elfMachine returns the ELF machine a GOARCH's binaries declare.
func elfMachine(goarch string) elf.Machine {
	if goarch == "arm64" {
		return elf.EM_AARCH64
	}
	return elf.EM_X86_64
}

// CheckStatic reports an error unless path is a static Linux binary for
// arch built with CGO_ENABLED=0 and -trimpath: what the packages promise
// (it runs on any distribution, needs no libc).
func CheckStatic(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w (build it with `make dist-bin`)", path, err)
	}
	defer f.Close()
	if f.Machine != elfMachine(arch) {
		return fmt.Errorf("binary %s is for %s, not %s", path, f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s is dynamically linked (has an interpreter): build with CGO_ENABLED=0", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("binary %s needs shared libraries %v: build with CGO_ENABLED=0", path, libs)
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("binary %s: no Go build info: %w", path, err)
	}
	want := map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux", "GOARCH": arch}
	got := map[string]string{}
	for _, s := range bi.Settings {
		got[s.Key] = s.Value
	}
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("binary %s was built with %s=%q, want %q (use `make dist-bin`)", path, k, got[k], v)
		}
	}
	return nil
}
